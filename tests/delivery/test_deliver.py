"""The one delivery path: how each upstream outcome is reported, and the journal that keeps a
retry from sending a second copy to a recipient the upstream already took."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import pytest

from gateway.delivery.deliver import Delivery, Trace
from gateway.delivery.transport import Outcome, Recipient, Reply, Transaction, failure
from gateway.errors import DeliveryFailed, GatewayError, StoreUnavailable
from gateway.store import AuditRecord
from support.transports import (
    ACCEPT,
    DATA_DEFERRED,
    DATA_REFUSED,
    DEFER_RCPT,
    DOWN,
    MAIL_DEFERRED,
    MAIL_REFUSED,
    REFUSE_RCPT,
    TIMEOUT,
    Fail,
    FakeTransport,
)

A, B, C = "a@secure.test", "b@secure.test", "c@secure.test"
DATA = b"Subject: hello\r\n\r\nBody\r\n"


class MemoryJournal:
    def __init__(self) -> None:
        self.entries: dict[str, set[str]] = {}
        self.audit: list[AuditRecord] = []
        self.fail_read: bool | Exception = False
        self.fail_write = False

    async def relayed(self, key: str) -> frozenset[str]:
        if isinstance(self.fail_read, Exception):
            raise self.fail_read
        if self.fail_read:
            raise OSError("disk I/O error")
        return frozenset(self.entries.get(key, ()))

    async def record_relayed(
        self, key: str, recipients: Sequence[str], audit: Sequence[AuditRecord] = ()
    ) -> None:
        if self.fail_write:
            raise OSError("disk full")
        self.entries.setdefault(key, set()).update(recipients)
        self.audit.extend(audit)


def transaction(*recipients: str) -> Transaction:
    return Transaction("head@school.test", tuple(Recipient(r) for r in recipients), DATA)


@pytest.fixture
def transport() -> FakeTransport:
    return FakeTransport()


@pytest.fixture
def journal() -> MemoryJournal:
    return MemoryJournal()


@pytest.fixture
def delivery(transport: FakeTransport, journal: MemoryJournal) -> Delivery:
    return Delivery(transport, journal, "gateway.school.test")


# --- every upstream outcome maps one way


@pytest.mark.parametrize(
    ("answer", "outcome", "temporary"),
    [
        (ACCEPT, Outcome.ACCEPTED, False),
        (DEFER_RCPT, Outcome.DEFERRED, True),
        (REFUSE_RCPT, Outcome.REFUSED, False),
    ],
    ids=["accepted", "4xx", "5xx"],
)
async def test_each_recipients_reply_maps_to_one_outcome(
    delivery: Delivery, transport: FakeTransport, answer: Reply, outcome: Outcome, temporary: bool
) -> None:
    transport.answers[B] = answer
    report = await delivery.deliver(transaction(A, B), "k")
    assert report.results[A].outcome is Outcome.ACCEPTED
    assert report.results[B].outcome is outcome
    assert outcome.temporary is temporary
    if outcome is not Outcome.ACCEPTED:
        assert report.refusals == {B: answer}
    assert report.failure is None


@pytest.mark.parametrize(
    ("fail", "outcome"),
    [
        (DOWN, Outcome.UNREACHABLE),
        (TIMEOUT, Outcome.TIMED_OUT),
        (MAIL_DEFERRED, Outcome.DEFERRED),
        (MAIL_REFUSED, Outcome.REFUSED),
        (DATA_DEFERRED, Outcome.DEFERRED),
        (DATA_REFUSED, Outcome.REFUSED),
    ],
    ids=["down", "timeout", "mail-4xx", "mail-5xx", "data-4xx", "data-5xx"],
)
async def test_a_failed_transaction_gives_every_recipient_its_outcome(
    delivery: Delivery,
    transport: FakeTransport,
    journal: MemoryJournal,
    fail: Fail,
    outcome: Outcome,
) -> None:
    transport.calls_then(fail)
    report = await delivery.deliver(transaction(A, B), "k")
    assert {r.outcome for r in report.results.values()} == {outcome}
    assert report.refusals == {A: fail.reply, B: fail.reply}
    assert report.accepted == ()
    assert report.failure is not None
    assert report.failure.stage == fail.stage
    assert report.failure.temporary is outcome.temporary
    assert transport.delivered == []
    assert journal.entries == {}


def test_delivery_failed_is_a_gateway_error_temporary_unless_refused() -> None:
    permanent = failure(Reply(550, "5.7.1 no"), "MAIL")
    assert isinstance(permanent, GatewayError)
    assert (permanent.outcome, permanent.temporary) == ("refused", False)
    assert failure(Reply(421, "4.3.2 bye"), "MAIL").temporary
    # A failure is never an acceptance, whatever code the far side sent.
    assert failure(Reply(250, "odd"), "DATA").outcome == "deferred"
    down = DeliveryFailed(421, "cannot reach the upstream", "connect", "unreachable")
    assert down.temporary
    assert str(down) == "upstream connect: 421 cannot reach the upstream"
    assert down.log_fields()["outcome"] == "unreachable"
    assert down.log_fields()["stage"] == "connect"
    # Whatever the upstream said, the SMTP client hears only the generic words.
    assert "upstream" not in str(permanent.public_reply)


# --- the journal


async def test_accepted_recipients_are_journalled_with_their_audit(
    delivery: Delivery, transport: FakeTransport, journal: MemoryJournal
) -> None:
    transport.answers[C] = REFUSE_RCPT
    record = AuditRecord("relayed", "", "gateway")
    seen: list[Sequence[str]] = []

    def audit(accepted: Sequence[str]) -> list[AuditRecord]:
        seen.append(tuple(accepted))
        return [record]

    report = await delivery.deliver(transaction(A, B, C), "k", audit=audit)
    assert report.sent == (A, B)
    assert journal.entries == {"k": {A, B}}
    assert seen == [(A, B)]
    assert journal.audit == [record]


async def test_a_retry_sends_only_to_recipients_not_yet_taken(
    delivery: Delivery, transport: FakeTransport, journal: MemoryJournal
) -> None:
    transport.answers[B] = DEFER_RCPT
    first = await delivery.deliver(transaction(A, B), "k")
    assert first.sent == (A,)
    transport.answers.clear()
    retry = await delivery.deliver(transaction(A, B), "k")
    assert transport.received == [(A,), (B,)]
    assert retry.accepted == (A, B)
    assert retry.sent == (B,)
    assert retry.results[A].earlier
    # Everyone taken: a further retry does not even connect.
    again = await delivery.deliver(transaction(A, B), "k")
    assert again.accepted == (A, B)
    assert again.sent == ()
    assert len(transport.attempts) == 2


async def test_the_journal_is_per_key(delivery: Delivery, transport: FakeTransport) -> None:
    await delivery.deliver(transaction(A), "one")
    await delivery.deliver(transaction(A), "two")
    assert transport.received == [(A,), (A,)]


async def test_recipients_known_delivered_elsewhere_are_not_sent(
    delivery: Delivery, transport: FakeTransport
) -> None:
    report = await delivery.deliver(transaction(A, B), "k", delivered=(A,))
    assert transport.received == [(B,)]
    assert report.accepted == (A, B)


async def test_a_journal_that_cannot_be_read_stops_the_send(
    delivery: Delivery, transport: FakeTransport, journal: MemoryJournal
) -> None:
    journal.fail_read = True
    with pytest.raises(OSError, match="disk I/O"):
        await delivery.deliver(transaction(A), "k")
    assert transport.attempts == []


@pytest.mark.parametrize(("flagged", "sent"), [(False, True), (True, False)])
async def test_a_shared_store_that_is_down_stops_flagged_mail_only(
    delivery: Delivery,
    transport: FakeTransport,
    journal: MemoryJournal,
    flagged: bool,
    sent: bool,
) -> None:
    # Unflagged mail stores nothing but the journal: it keeps flowing while the database is
    # down; flagged mail fails closed (the filter answers 451).
    journal.fail_read = StoreUnavailable("PostgreSQL at host=db: connection refused")
    if sent:
        report = await delivery.deliver(replace(transaction(A), flagged=flagged), "k")
        assert report.sent == (A,)
    else:
        with pytest.raises(StoreUnavailable):
            await delivery.deliver(replace(transaction(A), flagged=flagged), "k")
    assert transport.received == ([(A,)] if sent else [])


async def test_a_journal_that_cannot_be_written_still_reports_the_delivery(
    delivery: Delivery, transport: FakeTransport, journal: MemoryJournal
) -> None:
    journal.fail_write = True
    report = await delivery.deliver(transaction(A), "k")
    assert report.sent == (A,)
    assert transport.received == [(A,)]


# --- what is sent


async def test_trace_fields_are_prepended_once_to_the_original_bytes(
    delivery: Delivery, transport: FakeTransport
) -> None:
    trace = Trace("mta.school.test", "192.0.2.1", "ESMTP", "Q1", "checked; id=Q1")
    await delivery.deliver(transaction(A), "k", trace=trace)
    [copy] = transport.delivered
    data = copy.transaction.message
    assert data.endswith(DATA)
    head = data[: -len(DATA)].decode()
    assert head.startswith("Received: from mta.school.test ([192.0.2.1])\r\n")
    assert "\tby gateway.school.test (Safeguarding Mail Gateway) with ESMTP id Q1;\r\n" in head
    assert head.endswith("X-Safeguarding-Gateway: checked; id=Q1\r\n")


async def test_without_a_trace_the_bytes_go_as_they_are(
    delivery: Delivery, transport: FakeTransport
) -> None:
    options = Transaction(
        "head@school.test",
        (Recipient(A, ("NOTIFY=NEVER",)),),
        DATA,
        mail_options=("BODY=8BITMIME",),
        smtputf8=True,
    )
    await delivery.deliver(options, "k")
    [copy] = transport.delivered
    assert copy.transaction == options


async def test_close_closes_the_transport(delivery: Delivery, transport: FakeTransport) -> None:
    await delivery.close()
    assert transport.closed
