"""The delivery queue against a real store and a scripted transport: retried with back-off
until it is delivered, handed to review (flagged) or bounced (unflagged) at give_up_after, a
5xx told to the sender, a dead claimer's entries taken over, one copy per recipient however
often an attempt is repeated."""

from __future__ import annotations

import email
import email.message
import email.policy
import stat
from dataclasses import dataclass

import pytest
from store.backends import Nodes

from gateway.config import loader
from gateway.delivery.deliver import Delivery
from gateway.delivery.queue import QueueRunner
from gateway.delivery.transport import Outcome, Reply, Sent, Transaction, failure
from gateway.review.model import Review
from gateway.store import HoldStore, NewQueued, QueuedRecipient, RecipientState, Status
from gateway.store.sqlite import SqliteStore
from support.clock import Clock
from support.transports import DOWN, REFUSE_RCPT, FakeTransport

MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0
SENDER = "dsl@school.test"
A, B = "a@partner.test", "b@other.test"
BODY = b"From: dsl@school.test\r\nSubject: Child at risk\r\nX-Safeguarding: yes\r\n\r\nSecret\r\n"
OWNER = "gw.test:1"  # another host's process: never taken for dead


def words(raw: bytes) -> str:
    """The plain-words part of a notice, unfolded."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    part = message.get_body(("plain",))
    assert isinstance(part, email.message.EmailMessage)
    return " ".join(part.get_content().split())


@dataclass
class Queue:
    store: HoldStore
    transport: FakeTransport
    runner: QueueRunner
    clock: Clock

    async def add(self, *recipients: str, flagged: bool = True, sender: str = SENDER) -> str:
        new = NewQueued(
            key="k:" + ",".join(recipients) + sender,
            sender=sender,
            recipients=tuple(QueuedRecipient(r, r.split("@")[1]) for r in recipients),
            mail_options=(),
            message=BODY,
            client="127.0.0.1",
            helo="mta.school.test",
            protocol="ESMTP",
            message_id="<m1@school.test>",
            findings=("header:X-Safeguarding",),
            flagged=flagged,
        )
        entry, created = await self.store.enqueue(new)
        assert created
        return entry.id

    async def notices(self) -> list[tuple[str, tuple[str, ...], bytes]]:
        due = await self.store.due_notices(self.clock.now + 1)
        return [(n.kind, n.recipients, n.message) for n in due]


@pytest.fixture
async def queue(store_nodes: Nodes) -> Queue:
    clock = Clock()
    settings = loader.load(
        None,
        environ={
            "GATEWAY_DELIVERY_RETRY_AFTER": "5m",
            "GATEWAY_DELIVERY_GIVE_UP_AFTER": "4h",
            "GATEWAY_REVIEW_REVIEWERS": "lead@school.test",
        },
    )
    store = await store_nodes.node(clock)
    transport = FakeTransport()
    delivery = Delivery(transport, store, "gw.school.test")
    runner = QueueRunner(store, delivery, settings, "gw.school.test", clock, owner=OWNER)
    return Queue(store, transport, runner, clock)


async def test_enqueue_is_idempotent_and_the_body_is_sealed_at_rest(
    queue: Queue, store_nodes: Nodes
) -> None:
    queue_id = await queue.add(A)
    new = NewQueued("k:" + A + SENDER, SENDER, (QueuedRecipient(A, "partner.test"),), (), BODY,
                    "127.0.0.1", "h", "ESMTP", "")  # fmt: skip
    again, created = await queue.store.enqueue(new)
    assert (again.id, created) == (queue_id, False)
    assert await queue.store.queue_depth() == 1
    if isinstance(queue.store, SqliteStore):
        sqlite = queue.store
        rows = sqlite.file.call(
            lambda: sqlite.connection.execute("SELECT body FROM queue_bodies").fetchall()
        )
        [(sealed,)] = rows
        assert stat.S_IMODE(sqlite.file.path.stat().st_mode) == 0o600
    else:
        [(sealed,)] = await store_nodes.sql("SELECT body FROM queue_bodies")
    assert b"Secret" not in bytes(sealed)
    assert await queue.store.queued_message(queue_id) == BODY


async def test_a_failure_for_now_is_retried_with_back_off_until_delivered(queue: Queue) -> None:
    queue_id = await queue.add(A)
    start = queue.clock.now
    queue.transport.calls_then(DOWN, DOWN)
    assert await queue.runner.run_due() == 1
    entry = await queue.store.queued(queue_id)
    assert entry is not None
    assert entry.next_at == start + 5 * MINUTE
    assert entry.pending[0].reply.startswith("421")
    queue.clock.now = start + 4 * MINUTE
    assert await queue.runner.run_due() == 0  # not due yet
    queue.clock.now = start + 5 * MINUTE
    assert await queue.runner.run_due() == 1
    entry = await queue.store.queued(queue_id)
    assert entry is not None
    assert entry.next_at == start + 15 * MINUTE
    queue.clock.now = start + 15 * MINUTE
    assert await queue.runner.run_due() == 1
    entry = await queue.store.queued(queue_id)
    assert entry is not None
    assert entry.done_at is not None
    assert entry.recipients[0].state is RecipientState.DELIVERED
    assert queue.transport.received == [(A,)]
    assert queue.transport.delivered[0].transaction.flagged
    assert await queue.store.queue_depth() == 0
    with pytest.raises(KeyError):  # a finished entry keeps no body
        await queue.store.queued_message(queue_id)


@dataclass
class NoSecureHost:
    """A direct transport that finds no MX host it may use: stage "tls", a line per host."""

    hosts: tuple[str, ...] = (
        "mx1.partner.test [127.0.0.11]: no STARTTLS offered",
        "mx2.partner.test [127.0.0.12]: certificate does not name mx2.partner.test",
    )

    async def send(self, transaction: Transaction) -> Sent:
        reply = Reply(421, "4.7.5 no MX host could be authenticated")
        raise failure(reply, "tls", Outcome.DEFERRED, self.hosts)

    async def close(self) -> None:
        pass


async def test_flagged_mail_undelivered_at_give_up_becomes_a_hold_with_each_host(
    queue: Queue,
) -> None:
    runner = QueueRunner(
        queue.store,
        Delivery(NoSecureHost(), queue.store, "gw"),
        loader.load(None, environ={"GATEWAY_REVIEW_REVIEWERS": "lead@school.test"}),
        "gw.school.test",
        queue.clock,
        owner=OWNER,
    )
    queue_id = await queue.add(A)
    start = queue.clock.now
    attempts = 0
    while True:
        attempts += await runner.run_due()
        entry = await queue.store.queued(queue_id)
        assert entry is not None
        if entry.done_at is not None:
            break
        assert entry.next_at <= start + 4 * HOUR  # the last try falls on the give-up time
        queue.clock.now = entry.next_at
    assert queue.clock.now == start + 4 * HOUR
    assert attempts == 7  # 0, 5, 15, 35, 75, 155 minutes, then at 4 hours
    [recipient] = entry.recipients
    assert recipient.state is RecipientState.HELD
    hold_id = recipient.reply.removeprefix("held for review as ")
    hold = await queue.store.get(hold_id)
    assert hold is not None
    assert hold.status is Status.HELD
    assert hold.recipients[0].reasons == ("delivery-tls-failed",)
    assert hold.facts.delivery_hosts[A] == NoSecureHost.hosts
    assert await queue.store.message(hold_id) == BODY
    kinds = {kind for kind, _, _ in await queue.notices()}
    assert {"held", "held-reviewers"} <= kinds


async def test_unflagged_mail_given_up_is_bounced_to_the_sender(queue: Queue) -> None:
    queue_id = await queue.add(A, flagged=False)
    queue.transport.calls_then(*[DOWN] * 10)
    await queue.runner.run_due()
    queue.clock.now += 4 * HOUR
    await queue.runner.run_due()
    entry = await queue.store.queued(queue_id)
    assert entry is not None
    assert entry.recipients[0].state is RecipientState.FAILED
    [(kind, to, message)] = await queue.notices()
    assert (kind, to) == ("not-delivered", (SENDER,))
    assert "We kept trying for 4 hours" in words(message)


async def test_a_permanent_refusal_tells_the_sender_in_an_rfc3464_report(queue: Queue) -> None:
    queue.transport.answers[B] = REFUSE_RCPT
    queue_id = await queue.add(A, B)
    await queue.runner.run_due()
    entry = await queue.store.queued(queue_id)
    assert entry is not None
    states = {r.address: r.state for r in entry.recipients}
    assert states == {A: RecipientState.DELIVERED, B: RecipientState.FAILED}
    assert queue.transport.received == [(A,)]  # one transaction per recipient domain
    assert len(queue.transport.attempts) == 2
    [(kind, to, raw)] = await queue.notices()
    assert (kind, to) == ("not-delivered", (SENDER,))
    report = email.message_from_bytes(raw, policy=email.policy.default)
    assert report.get_content_type() == "multipart/report"
    assert report.get_param("report-type") == "delivery-status"
    assert b"Final-Recipient: rfc822; " + B.encode() in raw
    assert b"Status: 5.1.1" in raw
    assert b"Secret" not in raw
    assert b"Child at risk" not in raw
    assert report["In-Reply-To"] == "<m1@school.test>"


async def test_a_bounce_is_never_bounced(queue: Queue) -> None:
    queue.transport.answers[A] = REFUSE_RCPT
    await queue.add(A, sender="")
    await queue.runner.run_due()
    assert await queue.notices() == []


async def test_a_lease_that_runs_out_is_taken_over(queue: Queue) -> None:
    queue_id = await queue.add(A)
    now = queue.clock.now
    [taken] = await queue.store.claim_queued(now, now + 300, "crashed.test:7")
    assert taken.id == queue_id
    queue.clock.now = now + 10
    assert await queue.runner.run_due() == 0  # still leased
    queue.clock.now = now + 301
    assert await queue.runner.run_due() == 1
    assert queue.transport.received == [(A,)]
    # The first claimer, back from the dead, cannot overwrite what the second did.
    late = await queue.store.queue_progress(queue_id, "crashed.test:7", taken.recipients, 0, "")
    assert late is None


async def test_a_repeated_attempt_never_sends_a_second_copy(queue: Queue) -> None:
    queue_id = await queue.add(A)
    real = queue.store.queue_progress
    calls = 0

    async def crash_once(*args: object, **kwargs: object) -> None:
        nonlocal calls
        calls += 1
        raise OSError("the process died here")

    queue.store.queue_progress = crash_once  # type: ignore[method-assign]
    with pytest.raises(OSError, match="died"):
        await queue.runner.run_due()
    queue.store.queue_progress = real  # type: ignore[method-assign]
    queue.clock.now += 3600  # the lease has run out
    assert await queue.runner.run_due() == 1
    entry = await queue.store.queued(queue_id)
    assert entry is not None
    assert entry.recipients[0].state is RecipientState.DELIVERED
    assert queue.transport.received == [(A,)]
    assert calls == 1


async def test_the_sweep_prunes_finished_entries_past_retention(queue: Queue) -> None:
    environ = {"GATEWAY_REVIEW_RETENTION": "30d", "GATEWAY_REVIEW_REVIEWERS": "lead@school.test"}
    settings = loader.load(None, environ=environ)
    review = Review(
        settings, queue.store, Delivery(queue.transport, queue.store, "gw"), "gw", queue.clock
    )
    done = await queue.add(A)
    assert await queue.runner.run_due() == 1
    queue.clock.now += 10 * DAY
    waiting = await queue.add(B)
    queue.transport.calls_then(DOWN)
    assert await queue.runner.run_due() == 1  # B waits; A finished ten days ago
    queue.clock.now += 20 * DAY - 1
    assert (await review.sweep()).pruned == 0  # A is not yet past retention
    assert await queue.store.queued(done) is not None
    queue.clock.now += 2
    assert (await review.sweep()).pruned == 1
    assert await queue.store.queued(done) is None
    assert await queue.store.relayed(f"queue:{done}:partner.test") == frozenset()
    assert await queue.store.queued(waiting) is not None  # waiting entries are never pruned
    assert [e.id for e in await queue.store.queue_entries(finished=True)] == [waiting]
