"""The review model against a real store and a real upstream on loopback (no DNS needed):
release with a rationale, reject with a reason, exactly-once delivery, the sweep, the trail."""

from __future__ import annotations

import email
import email.message
import email.policy
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace

import pytest
from store.backends import Nodes

from gateway.audit import events as audit
from gateway.config import loader
from gateway.delivery.deliver import Delivery
from gateway.delivery.smarthost import Smarthost
from gateway.errors import ReviewError
from gateway.review.model import Review
from gateway.store import HeldRecipient, HoldQuery, NewHold, Status
from rig.upstream import Upstream
from support.clock import Clock

HOUR = 3600.0
BODY = b"Body with the child's details: J. Doe, 12 Oak Street.\r\n"
MESSAGE = (
    b"From: teacher@school.test\r\nTo: b@nosts.test, c@other.test\r\n"
    b"Subject: [SECURE] Referral for J\r\nMessage-ID: <m1@school.test>\r\n\r\n" + BODY
)


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream().start()
    yield server
    server.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def review(store_nodes: Nodes, upstream: Upstream, clock: Clock) -> AsyncIterator[Review]:
    settings = loader.load(
        None,
        environ={
            "GATEWAY_RELAY_PORT": str(upstream.port),
            "GATEWAY_RELAY_TIMEOUT": "5",
            "GATEWAY_REVIEW_REVIEWERS": "dsl@school.test",
            "GATEWAY_REVIEW_ESCALATION_CONTACTS": "head@school.test",
            "GATEWAY_NOTIFY_FROM": "gateway@school.test",
        },
    )
    store = await store_nodes.node(clock)
    relay = Smarthost(settings.relay, "gateway.school.test")
    delivery = Delivery(relay, store, "gateway.school.test")
    model = Review(settings, store, delivery, "gateway.school.test", clock)
    yield model
    await relay.close()


async def held(review: Review, key: str = "k1") -> str:
    store = review._store
    hold, created = await store.hold(
        NewHold(
            key=key,
            sender="teacher@school.test",
            recipients=(
                HeldRecipient("b@nosts.test", "nosts.test", ("sts-no-record",), ("NOTIFY=NEVER",)),
                HeldRecipient("c@other.test", "other.test", ("not-allowlisted",)),
            ),
            mail_options=("BODY=8BITMIME",),
            message=MESSAGE,
            client="127.0.0.1",
            message_id="<m1@school.test>",
            findings=("subject-marker: [SECURE]",),
        ),
        lambda h: ([audit.held("q1", h)], review.notices.held(h, [])),
    )
    assert created
    return hold.id


def notices(upstream: Upstream) -> list[bytes]:
    return [m.data for m in upstream.messages if b"Auto-Submitted: auto-generated" in m.data]


def deliveries(upstream: Upstream) -> list[tuple[str, ...]]:
    return [m.rcpt_tos for m in upstream.messages if b"Auto-Submitted" not in m.data]


async def test_release_needs_a_rationale(review: Review, upstream: Upstream) -> None:
    hold_id = await held(review)
    for empty in ("", "   ", "\n\t"):
        with pytest.raises(ReviewError, match="rationale"):
            await review.release(hold_id, empty, "Jo")
    assert (await review.get(hold_id)).status is Status.HELD
    assert deliveries(upstream) == []


async def test_release_delivers_once_with_options_and_records_who_and_why(
    review: Review, upstream: Upstream
) -> None:
    hold_id = await held(review)
    outcome = await review.release(hold_id, "Confirmed by phone with the social worker", "Jo")
    assert outcome.done
    assert set(outcome.delivered) == {"b@nosts.test", "c@other.test"}
    [message] = [m for m in upstream.messages if b"Auto-Submitted" not in m.data]
    assert message.data.endswith(MESSAGE)  # the original bytes, our trace lines on top
    assert b"X-Safeguarding-Gateway: released after review" in message.data
    assert "NOTIFY=NEVER" in message.rcpt_lines[0]
    assert "BODY=8BITMIME" in message.mail_line
    hold = await review.get(hold_id)
    assert (hold.status, hold.decided_by) == (Status.RELEASED, "Jo")
    assert hold.decision == "Confirmed by phone with the social worker"
    with pytest.raises(ReviewError, match="released"):
        await review.release(hold_id, "again", "Jo")
    assert len(deliveries(upstream)) == 1
    events = [(e.event, e.actor) for e in await review.audit_entries() if e.hold_id == hold_id]
    assert ("release-requested", "Jo") in events
    assert ("released", "Jo") in events


async def test_upstream_down_leaves_the_release_pending_then_the_sweep_finishes_it(
    review: Review, upstream: Upstream
) -> None:
    hold_id = await held(review)
    upstream.stop()
    outcome = await review.release(hold_id, "Urgent: strategy meeting at 3pm", "Jo")
    assert not outcome.done
    assert "upstream" in outcome.error or "reach" in outcome.error
    assert (await review.get(hold_id)).status is Status.RELEASING
    upstream.start()
    report = await review.sweep()
    assert report.released == [hold_id]
    assert (await review.get(hold_id)).status is Status.RELEASED
    assert len(deliveries(upstream)) == 1


async def test_a_recipient_refused_for_now_is_retried_alone(
    review: Review, upstream: Upstream
) -> None:
    hold_id = await held(review)
    upstream.fail_rcpt = {"c@other.test": 451}
    outcome = await review.release(hold_id, "Agreed with the head teacher", "Jo")
    assert not outcome.done
    assert outcome.delivered == ("b@nosts.test",)
    upstream.fail_rcpt = {}
    outcome = await review.release(hold_id, "ignored: the first rationale stands", "Jo")
    assert outcome.done
    assert deliveries(upstream) == [("b@nosts.test",), ("c@other.test",)]
    assert (await review.get(hold_id)).decision == "Agreed with the head teacher"


async def test_a_permanent_refusal_is_recorded_and_the_sender_told(
    review: Review, upstream: Upstream
) -> None:
    hold_id = await held(review)
    upstream.fail_rcpt = {"c@other.test": 550}
    outcome = await review.release(hold_id, "Sharing agreed", "Jo")
    assert outcome.done
    assert set(outcome.refused) == {"c@other.test"}
    await review.drain_notices()
    [released] = [n for n in notices(upstream) if b"Released after review" in n]
    assert b"could not pass it on to" in released
    assert b"c@other.test" in released


async def test_reject_needs_a_reason_and_tells_the_sender(
    review: Review, upstream: Upstream
) -> None:
    hold_id = await held(review)
    with pytest.raises(ReviewError, match="reason"):
        await review.reject(hold_id, " ", "Jo")
    await review.reject(hold_id, "Use the council's secure portal instead", "Jo")
    with pytest.raises(ReviewError, match="rejected"):
        await review.release(hold_id, "changed my mind", "Jo")
    await review.drain_notices()
    texts = notices(upstream)
    [rejected] = [n for n in texts if b"Not sent after review" in n]
    assert b"Use the council's secure portal instead" in rejected
    assert deliveries(upstream) == []


async def test_notices_never_quote_the_body_or_subject(review: Review, upstream: Upstream) -> None:
    hold_id = await held(review)
    await review.reject(hold_id, "Wrong recipient", "Jo")
    await review.drain_notices()
    texts = notices(upstream)
    assert len(texts) == 3  # held (sender), held (reviewers), rejected (sender)
    for text in texts:
        assert b"Oak Street" not in text
        assert b"Referral for J" not in text
    [to_sender] = [n for n in texts if b"Held for safeguarding review" in n]
    assert b"nosts.test does not publish an MTA-STS policy in enforce mode" in to_sender
    assert b"other.test is not on our secure-email list" in to_sender


async def test_reviewers_are_told_the_reasons_in_words_and_codes(
    review: Review, upstream: Upstream
) -> None:
    await held(review)
    await review.drain_notices()
    [to_reviewers] = [
        m for m in upstream.messages if b"Subject: Safeguarding hold to review" in m.data
    ]
    message = email.message_from_bytes(to_reviewers.data, policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    text = message.get_content().replace("\r\n", "\n")
    assert "b@nosts.test\n" in text
    assert "- nosts.test does not publish an MTA-STS policy in enforce mode (sts-no-record)" in text
    assert "- other.test is not on our secure-email list (not-allowlisted)" in text


async def test_sweep_escalates_then_expires(
    review: Review, upstream: Upstream, clock: Clock
) -> None:
    hold_id = await held(review)
    clock.now += 3 * HOUR
    assert (await review.sweep()).escalated == []
    clock.now += 1.5 * HOUR
    report = await review.sweep()
    assert report.escalated == [hold_id]
    assert (await review.sweep()).escalated == []  # once
    escalations = [n for n in notices(upstream) if b"Escalated" in n]
    assert len(escalations) == 1
    # The escalation contact reads the reasons as the reviewers did: words, then the code.
    escalation = email.message_from_bytes(escalations[0], policy=email.policy.default)
    assert isinstance(escalation, email.message.EmailMessage)
    text = escalation.get_content().replace("\r\n", "\n")
    assert "- nosts.test does not publish an MTA-STS policy in enforce mode (sts-no-record)" in text
    assert "- other.test is not on our secure-email list (not-allowlisted)" in text
    clock.now += 7 * 24 * HOUR
    report = await review.sweep()
    assert report.expired == [hold_id]
    hold = await review.get(hold_id)
    assert hold.status is Status.EXPIRED
    assert any(b"review time ran out" in n for n in notices(upstream))
    clock.now += 31 * 24 * HOUR
    assert (await review.sweep()).purged == [hold_id]
    with pytest.raises(ReviewError, match="purged"):
        await review.raw_message(hold_id)
    events = [e.event for e in await review.audit_entries() if e.hold_id == hold_id]
    assert events.count("escalated") == 1
    assert "expired" in events
    assert "purged" in events


async def test_filters(review: Review, clock: Clock) -> None:
    first = await held(review, "a")
    clock.now += 2 * HOUR
    second = await held(review, "b")
    held_now = HoldQuery.of(Status.HELD)
    by_age = await review.holds(replace(held_now, created_before=clock.now - HOUR))
    assert [h.id for h in by_age] == [first]
    assert {h.id for h in await review.holds(replace(held_now, reason="not-allowlisted"))} == {
        first,
        second,
    }
    assert await review.holds(replace(held_now, recipient_domain="elsewhere.test")) == []
    assert len(await review.holds(replace(held_now, sender="TEACHER@"))) == 2


async def test_audit_verify_names_an_edited_or_deleted_entry(
    review: Review, store_nodes: Nodes
) -> None:
    hold_id = await held(review)
    await review.reject(hold_id, "Not needed", "Jo")
    entries = await review.audit_entries()
    assert (await review.verify_audit())[1] is None
    await store_nodes.sql("UPDATE audit SET actor = 'Someone else' WHERE event = 'rejected'")
    seq = next(e.seq for e in entries if e.event == "rejected")
    _, problem = await review.verify_audit()
    assert problem is not None
    assert problem.seq == seq
    assert "changed" in str(problem)
    await store_nodes.sql("UPDATE audit SET actor = 'Jo' WHERE event = 'rejected'")
    await store_nodes.sql("DELETE FROM audit WHERE seq = 1")
    _, problem = await review.verify_audit()
    assert problem is not None
    assert problem.seq == 1
    assert "missing" in str(problem)


def test_export_formats() -> None:
    from gateway.core.auditchain import GENESIS, seal

    entry = seal(1, 1_800_000_000.0, "held", "h1", "gateway", {"a": 1}, GENESIS, key=b"k" * 32)
    csv_text = audit.export([entry], "csv")
    assert csv_text.splitlines()[0] == "seq,time,event,hold_id,actor,data,hash"
    assert "2027-01-15T08:00:00+00:00" in csv_text
    assert '"{""a"": 1}"' in csv_text
    assert '"event": "held"' in audit.export([entry], "json")
