"""The outbox sends different holds' notices side by side and one hold's in their order, on a
real store (both backends) with an in-memory upstream: a notice whose upstream is slow holds up
no other hold's, the trail and the recipients see each hold's notices as they were queued, a
store error still reaches the sweep, and no notice goes out twice."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence

import pytest
from store.backends import Nodes

from gateway.audit import events as audit
from gateway.config import loader
from gateway.delivery.deliver import Delivery
from gateway.delivery.transport import Sent, Transaction
from gateway.errors import StoreUnavailable
from gateway.review.model import Review
from gateway.review.outbox import Marks
from gateway.store import AuditQuery, AuditRecord, HeldRecipient, HoldStore, NewHold
from gateway.store.sqlite.outbox import NOTICE_LEASE
from support.clock import Clock
from support.transports import FakeTransport

MESSAGE = b"From: a@school.test\r\nSubject: x\r\nX-Safeguarding: yes\r\n\r\nBody\r\n"
REVIEWER = "dsl@school.test"
SLOW = "slow@school.test"  # the sender whose notices' upstream waits
HOLD_FIELD = re.compile(rb"X-Safeguarding-Gateway: notice; hold=(\w+)")


class GatedTransport(FakeTransport):
    """Accepts everything, but a copy to a gated recipient waits until the copies delivered
    meanwhile satisfy ``opens_when``."""

    def __init__(self) -> None:
        super().__init__()
        self.gated: set[str] = set()
        self.opens_when: Callable[[GatedTransport], bool] = lambda _: True
        self._gate = asyncio.Event()

    async def send(self, transaction: Transaction) -> Sent:
        if any(r.address in self.gated for r in transaction.recipients):
            await self._gate.wait()
        sent = await super().send(transaction)
        if self.opens_when(self):
            self._gate.set()
        return sent

    def copies(self) -> list[tuple[str, tuple[str, ...]]]:
        """Per notice the upstream took, in its order: the hold it is about, its recipients."""
        found = []
        for copy in self.delivered:
            about = HOLD_FIELD.search(copy.transaction.data)
            found.append((about.group(1).decode() if about else "", copy.recipients))
        return found

    def holds_told(self) -> list[str]:
        return [hold for hold, _ in self.copies()]


def review_of(store: HoldStore, transport: FakeTransport, clock: Clock) -> Review:
    settings = loader.load(
        None,
        environ={
            "GATEWAY_REVIEW_REVIEWERS": REVIEWER,
            "GATEWAY_NOTIFY_FROM": "gateway@school.test",
        },
    )
    delivery = Delivery(transport, store, "gateway.school.test")
    return Review(settings, store, delivery, "gw.test", clock)


async def held(review: Review, clock: Clock, key: str, sender: str) -> str:
    clock.now += 1  # each event at its own moment: the outbox's order is the events' order
    hold, _ = await review._store.hold(
        NewHold(
            key=key,
            sender=sender,
            recipients=(HeldRecipient("b@nosts.test", "nosts.test", ("sts-no-record",)),),
            mail_options=(),
            message=MESSAGE,
            client="127.0.0.1",
            message_id=f"<{key}@school.test>",
            findings=(),
        ),
        lambda h: ([audit.held("q1", h)], review.notices.held(h, [])),
    )
    return hold.id


async def told(store: HoldStore, hold_id: str) -> list[str]:
    """The kinds of notice the trail says were sent about ``hold_id``, in its order."""
    entries = await store.audit_query(AuditQuery(hold_id=hold_id, limit=100))
    ordered = sorted(entries, key=lambda e: e.seq)
    return [e.data["kind"] for e in ordered if e.event == "notice-sent"]


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def test_a_slow_notice_holds_up_no_other_holds_and_each_holds_keep_their_order(
    store_nodes: Nodes, clock: Clock
) -> None:
    store = await store_nodes.node(clock)
    transport = GatedTransport()
    review = review_of(store, transport, clock)
    slow = await held(review, clock, "k1", SLOW)
    others = [await held(review, clock, f"k{n}", f"t{n}@school.test") for n in (2, 3, 4)]
    clock.now += 1
    await review.reject(slow, "Sent to the wrong family", "Jo (DSL)")
    transport.gated.add(SLOW)
    # Sent one after another, the slow hold's first notice would stand in front of every
    # other hold's: the gate would never open.
    transport.opens_when = lambda t: sorted(t.holds_told()) == sorted(others * 2)
    async with asyncio.timeout(30):  # a guard against a hang, not a measurement
        sent = await review.drain_notices()
    assert sent == 2 * 4 + 1
    assert transport.holds_told()[-3:] == [slow, slow, slow]  # its upstream was waiting
    assert await told(store, slow) == ["held", "held-reviewers", "rejected"]
    to_slow = [rcpts for hold, rcpts in transport.copies() if hold == slow]
    assert to_slow == [(SLOW,), (REVIEWER,), (SLOW,)]
    for hold_id in others:
        assert await told(store, hold_id) == ["held", "held-reviewers"]


async def test_a_store_error_reaches_the_sweep_after_the_other_holds_are_told(
    store_nodes: Nodes, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await store_nodes.node(clock)
    transport = GatedTransport()
    review = review_of(store, transport, clock)
    broken = await held(review, clock, "k1", "teacher@school.test")
    fine = await held(review, clock, "k2", "head@school.test")
    mark = store.notices_sent

    async def notices_sent(marks: Sequence[tuple[str, Sequence[AuditRecord]]]) -> None:
        if any(r.hold_id == broken for _, records in marks for r in records):
            raise StoreUnavailable("the database went away")
        await mark(marks)

    monkeypatch.setattr(store, "notices_sent", notices_sent)
    with pytest.raises(StoreUnavailable):
        await review.drain_notices()
    assert await told(store, fine) == ["held", "held-reviewers"]
    # The broken hold's reviewers' notice did not go ahead of its sender's, unmarked.
    assert [h for h in transport.holds_told() if h == broken] == [broken]
    assert await told(store, broken) == []
    monkeypatch.setattr(store, "notices_sent", mark)
    clock.now += NOTICE_LEASE + 1  # the claim's lease over: the next sweep takes them again
    assert await review.drain_notices() == 2
    assert await told(store, broken) == ["held", "held-reviewers"]
    assert await told(store, fine) == ["held", "held-reviewers"]


async def test_a_recipient_the_journal_already_has_is_not_sent_the_notice_again(
    store_nodes: Nodes, clock: Clock
) -> None:
    # An earlier version wrote a notice's journal, then its mark: a crash between the two
    # left a notice whose upstream had it, unmarked.
    store = await store_nodes.node(clock)
    transport = GatedTransport()
    review = review_of(store, transport, clock)
    hold_id = await held(review, clock, "k1", "teacher@school.test")
    await store_nodes.sql(
        "INSERT INTO relay_journal (key, recipient, at)"
        " SELECT 'notice:' || id, 'dsl@school.test', 0 FROM outbox WHERE kind = 'held-reviewers'"
    )
    assert await review.drain_notices() == 2
    assert transport.received == [("teacher@school.test",)]
    assert await told(store, hold_id) == ["held", "held-reviewers"]
    rows = await store_nodes.sql("SELECT kind FROM outbox WHERE sent_at IS NULL")
    assert rows == []
    clock.now += NOTICE_LEASE + 1
    assert await review.drain_notices() == 0
    assert transport.received == [("teacher@school.test",)]


async def test_a_claim_takes_the_rest_of_a_holds_notices_past_its_limit(
    store_nodes: Nodes, clock: Clock
) -> None:
    # Two workers (or nodes) draining at once never send a part of one hold's notices each,
    # in whichever order their sends happen to finish.
    store = await store_nodes.node(clock)
    other = await store_nodes.node(clock)
    review = review_of(store, GatedTransport(), clock)
    first = await held(review, clock, "k1", "teacher@school.test")
    second = await held(review, clock, "k2", "head@school.test")
    claimed = await store.due_notices(clock.now, limit=3)
    assert [(n.hold_id, n.kind) for n in claimed] == [
        (first, "held"),
        (first, "held-reviewers"),
        (second, "held"),
        (second, "held-reviewers"),
    ]
    assert await other.due_notices(clock.now, limit=3) == []


class SlowMarks:
    """A store's ``notices_sent`` that waits for ``release`` on its first write."""

    def __init__(self, fail: set[str] | None = None) -> None:
        self.written: list[list[str]] = []
        self.release = asyncio.Event()
        self.started = asyncio.Event()
        self.fail = fail or set()

    async def notices_sent(self, marks: Sequence[tuple[str, Sequence[AuditRecord]]]) -> None:
        ids = [notice_id for notice_id, _ in marks]
        if not self.written:
            self.written.append(ids)
            self.started.set()
            await self.release.wait()
        else:
            self.written.append(ids)
        if self.fail & set(ids):
            raise StoreUnavailable("the database went away")


@pytest.mark.parametrize(
    ("fail", "failed"),
    [(set(), set()), ({"n2"}, {"n2", "n3"}), ({"n1"}, {"n1"})],
    ids=["all-written", "second-write-fails", "first-write-fails"],
)
async def test_marks_made_during_a_write_share_the_next_and_each_hears_its_outcome(
    fail: set[str], failed: set[str]
) -> None:
    store = SlowMarks(fail)
    marks = Marks(store)  # type: ignore[arg-type]
    first = asyncio.create_task(marks.mark("n1", []))
    await store.started.wait()  # the first write is under way
    later = [asyncio.create_task(marks.mark(n, [])) for n in ("n2", "n3")]
    # Callbacks run in the order they were scheduled: this one after the two tasks' first
    # steps, by which time both marks are made and waiting for the first write.
    both_waiting = asyncio.Event()
    asyncio.get_running_loop().call_soon(both_waiting.set)
    await both_waiting.wait()
    store.release.set()
    outcomes = await asyncio.gather(first, *later, return_exceptions=True)
    assert store.written == [["n1"], ["n2", "n3"]]
    raised = {
        n
        for n, o in zip(("n1", "n2", "n3"), outcomes, strict=True)
        if isinstance(o, StoreUnavailable)
    }
    assert raised == failed
