"""The filter's SMTP reply, in process: every combination of verdicts and of what the upstream
and the store do, against a fake transport and a real SQLite store in a temporary folder.

The promise under test is RFC 5321 §6.1's: 250 only when every recipient is relayed or durably
held; 4xx when anything is left undone, so the sending MTA keeps the message and retries; 5xx
only for what a retry can never fix. Each case says the reply, what the upstream received,
what the store holds, and what the relay journal remembers.
"""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
import structlog

from gateway.config import loader
from gateway.core.allowlist import Allowlist, AllowlistEntry
from gateway.core.model import (
    DaneFacts,
    DomainFacts,
    DomainVerdict,
    MxFacts,
    MxStatus,
    PolicyStatus,
    Reason,
    RecordStatus,
    StsPolicyFacts,
    StsRecordFacts,
    TlsRptFacts,
    Transport,
    Verdict,
)
from gateway.delivery.deliver import Delivery
from gateway.delivery.transport import Recipient, Reply
from gateway.filter.message import Incoming
from gateway.filter.orchestrator import Filter
from gateway.posture.assessment import Assessment
from gateway.smtp.reply import SmtpReply
from gateway.store import HoldQuery
from gateway.store.crypto import Sealer
from gateway.store.sqlite import HELD_DB, SqliteStore
from rig.storefault import refuse_holds
from support.transports import (
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

SENDER = "head@school.test"
SECURE = "colleague@secure.test"
SECURE_2 = "nurse@secure.test"
INSECURE = "officer@nosts.test"
UNDETERMINED = "worker@slow.test"

# What the posture stage would say of each domain.
VERDICTS = {
    "secure.test": DomainVerdict("secure.test", Verdict.SECURE, (), Transport.MTA_STS_ENFORCE),
    "nosts.test": DomainVerdict("nosts.test", Verdict.NOT_SECURE, (Reason.STS_NO_RECORD,)),
    "school.test": DomainVerdict("school.test", Verdict.SECURE, (), Transport.MTA_STS_ENFORCE),
    "slow.test": DomainVerdict("slow.test", Verdict.UNDETERMINED, (Reason.DNS_TEMPORARY_ERROR,)),
}


class FakePosture:
    """The posture stage as the filter sees it: the allowlist, and a canned assessment per
    recipient domain."""

    def __init__(self) -> None:
        self.allowlist = Allowlist([AllowlistEntry("school.test", wildcard=False)])
        self.asked: list[str] = []

    async def assess(
        self, domain: str, today: dt.date | None = None, allowlist: Allowlist | None = None
    ) -> Assessment:
        self.asked.append(domain)
        verdict = VERDICTS[domain]
        facts = DomainFacts(
            domain,
            MxFacts(MxStatus.FOUND, (f"mx.{domain}",)),
            StsRecordFacts(RecordStatus.FOUND, "20260101"),
            StsPolicyFacts(PolicyStatus.NOT_FETCHED),
            TlsRptFacts(RecordStatus.FOUND),
            DaneFacts(resolver_trusted=False),
        )
        return Assessment(self.allowlist.match(domain, _TODAY), facts, verdict)

    async def assess_all(
        self, domains: Sequence[str], allowlist: Allowlist | None = None
    ) -> list[Assessment]:
        return [await self.assess(domain, allowlist=allowlist) for domain in domains]


_TODAY = dt.date(2026, 1, 1)


def message(to: tuple[str, ...], flagged: bool = True) -> bytes:
    subject = "[SECURE] Referral for J" if flagged else "Timetable"
    return (
        f"From: {SENDER}\r\nTo: {', '.join(to)}\r\nSubject: {subject}\r\n"
        "Message-ID: <m1@school.test>\r\n\r\nThe notes from today's meeting.\r\n"
    ).encode()


@dataclass
class Rig:
    filter: Filter
    transport: FakeTransport
    store: SqliteStore
    posture: FakePosture
    folder: Path

    async def send(self, to: tuple[str, ...], flagged: bool = True) -> SmtpReply:
        incoming = Incoming(
            client_ip="192.0.2.10",
            helo="mta.school.test",
            esmtp=True,
            sender=SENDER,
            mail_options=(),
            recipients=tuple(Recipient(a) for a in to),
            data=message(to, flagged),
        )
        return await self.filter.handle(incoming)

    async def held(self) -> dict[str, tuple[str, ...]]:
        """Every held recipient, with its reasons."""
        return {
            r.address: r.reasons
            for hold in await self.store.holds(HoldQuery())
            for r in hold.recipients
        }

    def journal(self) -> set[str]:
        db = sqlite3.connect(self.folder / "held.sqlite3")
        try:
            return {row[0] for row in db.execute("SELECT recipient FROM relay_journal")}
        finally:
            db.close()


@pytest.fixture
def make_rig(tmp_path: Path) -> Callable[..., Rig]:
    stores: list[SqliteStore] = []

    def make(on_dns_error: str = "hold", direct: str = "none") -> Rig:
        settings = loader.load(
            None,
            environ={
                "GATEWAY_POLICY_ON_DNS_ERROR": on_dns_error,
                "GATEWAY_DELIVERY_DIRECT": direct,
                "GATEWAY_NOTIFY_FROM": "gateway@school.test",
                "GATEWAY_REVIEW_REVIEWERS": "dsl@school.test",
            },
        )
        settings = replace(
            settings, policy=replace(settings.policy, local_domains=("school.test",))
        )
        store = SqliteStore(tmp_path, Sealer(b"k" * 32))
        stores.append(store)
        transport = FakeTransport()
        posture = FakePosture()
        delivery = Delivery(transport, store, "gateway.school.test")
        filter_ = Filter(settings, posture, store, delivery, "gateway.school.test")
        return Rig(filter_, transport, store, posture, tmp_path)

    return make


@pytest.fixture
async def rig(make_rig: Callable[..., Rig]) -> AsyncIterator[Rig]:
    made = make_rig()
    yield made
    await made.store.close()


QID = r"[0-9a-f]{12}"
HID = r"[0-9a-f]{16}"
RELAYED = rf"2\.0\.0 Ok: relayed as {QID}"
HELD = rf"2\.0\.0 Ok: held for review as ({HID})"
SPLIT = rf"2\.0\.0 Ok: relayed as {QID}, held for review as ({HID})"
REFUSALS_HELD = rf"2\.0\.0 Ok: relayed as {QID}, upstream refusals held as ({HID})"
UPSTREAM_DOWN = r"4\.4\.1 Upstream unavailable; try again later"
DNS_TEMPFAIL = r"4\.4\.3 Recipient security could not be verified; try later"
STORE_TEMPFAIL = r"4\.3\.0 Could not store the message; try again later"
NOT_SECURE = ("sts-no-record",)
REFUSED = ("upstream-refused",)


@dataclass(frozen=True)
class Case:
    id: str
    to: tuple[str, ...]
    code: int
    text: str  # a regex for "enhanced-code text"; its groups are hold ids the reply names
    delivered: tuple[tuple[str, ...], ...] = ()  # the recipients of each copy upstream
    held: dict[str, tuple[str, ...]] = field(default_factory=dict)  # address -> reasons
    journal: frozenset[str] = frozenset()
    flagged: bool = True
    answers: dict[str, Reply] = field(default_factory=dict)  # the upstream's RCPT replies
    calls: tuple[Fail, ...] = ()  # the upstream failing whole transactions, call by call
    on_dns_error: str = "hold"


CASES = [
    # --- verdicts, the upstream taking everything
    Case("relayed", (SECURE,), 250, RELAYED, ((SECURE,),), journal=frozenset({SECURE})),
    Case("relayed-unflagged", (INSECURE,), 250, RELAYED, ((INSECURE,),), flagged=False,
         journal=frozenset({INSECURE})),
    Case("held", (INSECURE,), 250, HELD, held={INSECURE: NOT_SECURE}),
    Case("split", (SECURE, INSECURE), 250, SPLIT, ((SECURE,),), {INSECURE: NOT_SECURE},
         frozenset({SECURE})),
    # --- the upstream refusing recipients at RCPT
    Case("only-recipient-5xx", (SECURE,), 550, r"5\.1\.1 Upstream refused: No such user",
         answers={SECURE: REFUSE_RCPT}),
    Case("only-recipient-4xx", (SECURE,), 451, UPSTREAM_DOWN, answers={SECURE: DEFER_RCPT}),
    Case("unflagged-4xx", (INSECURE,), 451, UPSTREAM_DOWN, flagged=False,
         answers={INSECURE: DEFER_RCPT}),
    Case("one-of-two-5xx", (SECURE, SECURE_2), 250, REFUSALS_HELD, ((SECURE,),),
         {SECURE_2: REFUSED}, frozenset({SECURE}), answers={SECURE_2: REFUSE_RCPT}),
    Case("one-of-two-4xx", (SECURE, SECURE_2), 250, REFUSALS_HELD, ((SECURE,),),
         {SECURE_2: REFUSED}, frozenset({SECURE}), answers={SECURE_2: DEFER_RCPT}),
    Case("split-relay-refused", (SECURE, INSECURE), 250, REFUSALS_HELD,
         held={INSECURE: NOT_SECURE, SECURE: REFUSED}, answers={SECURE: REFUSE_RCPT}),
    # --- the upstream failing the whole transaction
    Case("down", (SECURE,), 451, UPSTREAM_DOWN, calls=(DOWN,)),
    Case("down-split", (SECURE, INSECURE), 451, UPSTREAM_DOWN, held={INSECURE: NOT_SECURE},
         calls=(DOWN,)),
    Case("timeout", (SECURE,), 451, UPSTREAM_DOWN, calls=(TIMEOUT,)),
    Case("mail-4xx", (SECURE,), 451, UPSTREAM_DOWN, calls=(MAIL_DEFERRED,)),
    Case("mail-5xx", (SECURE,), 550, r"5\.7\.1 Upstream refused: Sender rejected",
         calls=(MAIL_REFUSED,)),
    Case("mail-5xx-split", (SECURE, INSECURE), 250, REFUSALS_HELD,
         held={INSECURE: NOT_SECURE, SECURE: REFUSED}, calls=(MAIL_REFUSED,)),
    Case("data-4xx", (SECURE,), 451, UPSTREAM_DOWN, calls=(DATA_DEFERRED,)),
    Case("data-5xx", (SECURE,), 554, r"5\.6\.0 Upstream refused: Message rejected",
         calls=(DATA_REFUSED,)),
    # --- DNS that could not answer: hold, or temp-fail the whole message
    Case("dns-temporary-hold", (UNDETERMINED,), 250, HELD,
         held={UNDETERMINED: ("dns-temporary-error",)}),
    Case("dns-temporary-split", (SECURE, UNDETERMINED), 250, SPLIT, ((SECURE,),),
         {UNDETERMINED: ("dns-temporary-error",)}, frozenset({SECURE})),
    Case("dns-temporary-tempfail", (UNDETERMINED,), 451, DNS_TEMPFAIL, on_dns_error="tempfail"),
    Case("dns-temporary-tempfail-mixed", (SECURE, UNDETERMINED), 451, DNS_TEMPFAIL,
         on_dns_error="tempfail"),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_reply_for_each_outcome(make_rig: Callable[..., Rig], case: Case) -> None:
    rig = make_rig(case.on_dns_error)
    try:
        rig.transport.answers.update(case.answers)
        rig.transport.calls_then(*case.calls)
        reply = await rig.send(case.to, case.flagged)
        assert reply.code == case.code, reply
        matched = re.fullmatch(case.text, f"{reply.enhanced} {reply.text}")
        assert matched, reply
        assert tuple(rig.transport.received) == case.delivered
        assert await rig.held() == case.held
        named = set(matched.groups())
        assert named <= {h.id for h in await rig.store.holds(HoldQuery())}
        assert rig.journal() == case.journal
    finally:
        await rig.store.close()


async def test_store_failure_tempfails_and_relays_nothing(rig: Rig) -> None:
    refuse_holds(rig.folder / HELD_DB)
    reply = await rig.send((SECURE, INSECURE))
    assert (reply.code, f"{reply.enhanced} {reply.text}") == (
        451,
        "4.3.0 Could not store the message; try again later",
    )
    assert rig.transport.attempts == []
    assert await rig.store.holds(HoldQuery()) == []
    assert rig.journal() == set()


@pytest.mark.parametrize(
    "failure", [DOWN, TIMEOUT, MAIL_DEFERRED, DATA_DEFERRED], ids=["down", "timeout", "4xx", "data"]
)
async def test_retry_after_a_tempfail_delivers_once_and_holds_once(rig: Rig, failure: Fail) -> None:
    rig.transport.calls_then(failure)
    first = await rig.send((SECURE, INSECURE))
    assert first.code == 451, first
    [hold] = await rig.store.holds(HoldQuery())

    retry = await rig.send((SECURE, INSECURE))
    assert retry.code == 250, retry
    assert hold.id in retry.text
    assert rig.transport.received == [(SECURE,)]
    # Our 250 lost on the way: the MTA sends again, and nothing more leaves or is held.
    again = await rig.send((SECURE, INSECURE))
    assert again.code == 250, again
    # And the reply says so, rather than claim a relay that did not happen.
    assert re.fullmatch(rf"Ok: already relayed as {QID}, held for review as {hold.id}", again.text)
    assert rig.transport.received == [(SECURE,)]
    assert len(rig.transport.attempts) == 2
    assert [h.id for h in await rig.store.holds(HoldQuery())] == [hold.id]


async def test_a_retried_duplicate_is_answered_already_relayed(rig: Rig) -> None:
    first = await rig.send((SECURE,))
    assert re.fullmatch(RELAYED, f"{first.enhanced} {first.text}"), first
    again = await rig.send((SECURE,))
    assert (again.code, again.enhanced) == (250, "2.0.0")
    assert re.fullmatch(rf"Ok: already relayed as {QID}", again.text), again
    assert rig.transport.received == [(SECURE,)]


async def test_copy_upstream_is_the_original_with_the_trace_fields_on_top(rig: Rig) -> None:
    reply = await rig.send((SECURE, INSECURE))
    assert reply.code == 250, reply
    [copy] = rig.transport.delivered
    original = message((SECURE, INSECURE))
    assert copy.transaction.message.endswith(original)
    trace = copy.transaction.message[: -len(original)].decode()
    assert trace.startswith("Received: from mta.school.test ([192.0.2.10])\r\n")
    assert "by gateway.school.test (Safeguarding Mail Gateway) with ESMTP id " in trace
    assert trace.count("Received:") == 1
    summary = "X-Safeguarding-Gateway: flagged; relayed to secure recipients;"
    assert f"{summary} transport=mta-sts-enforce; id=" in trace
    assert copy.transaction.sender == SENDER


async def test_unflagged_mail_is_not_checked(rig: Rig) -> None:
    reply = await rig.send((INSECURE,), flagged=False)
    assert reply.code == 250, reply
    assert rig.posture.asked == []
    [copy] = rig.transport.delivered
    assert b"X-Safeguarding-Gateway: not flagged; relayed unchecked;" in copy.transaction.message


async def test_unchecked_mail_logs_one_verdict_line_naming_every_recipient(rig: Rig) -> None:
    with structlog.testing.capture_logs() as events:
        assert (await rig.send((SECURE, INSECURE), flagged=False)).code == 250
    verdicts = [e for e in events if e["event"] == "recipient verdict"]
    assert [(v["recipients"], v["action"], v["checked"]) for v in verdicts] == [
        ([SECURE, INSECURE], "relay", False)
    ]


async def test_checked_mail_logs_a_verdict_line_per_recipient(rig: Rig) -> None:
    with structlog.testing.capture_logs() as events:
        assert (await rig.send((SECURE, INSECURE))).code == 250
    verdicts = [e for e in events if e["event"] == "recipient verdict"]
    assert [(v["recipient"], v["action"], v["reasons"], v["checked"]) for v in verdicts] == [
        (SECURE, "relay", [], True),
        (INSECURE, "hold", list(NOT_SECURE), True),
    ]


# ---- [delivery] direct: which recipients the gateway queues to deliver itself

QUEUED = rf"2\.0\.0 Ok: queued as ({HID})"
LOCAL = "deputy@school.test"


@dataclass(frozen=True)
class Route:
    id: str
    direct: str
    to: tuple[str, ...]
    text: str
    queued: tuple[str, ...] = ()  # the recipients of the queue entry
    delivered: tuple[tuple[str, ...], ...] = ()  # through the smarthost
    flagged: bool = True


ROUTES = [
    Route("none: flagged mail goes to the smarthost", "none", (SECURE,), RELAYED, (), ((SECURE,),)),
    Route("flagged: queued, not relayed", "flagged", (SECURE,), QUEUED, (SECURE,)),
    Route(
        "flagged: queued and held",
        "flagged",
        (SECURE, INSECURE),
        rf"2\.0\.0 Ok: queued as {HID}, held for review as {HID}",
        (SECURE,),
    ),
    Route(
        "flagged: a local domain still goes to the smarthost",
        "flagged",
        (SECURE, LOCAL),
        rf"2\.0\.0 Ok: relayed as {QID}, queued as {HID}",
        (SECURE,),
        ((LOCAL,),),
    ),
    Route(
        "flagged: unflagged mail goes to the smarthost",
        "flagged",
        (SECURE,),
        RELAYED,
        (),
        ((SECURE,),),
        flagged=False,
    ),
    Route("all: unflagged mail is queued too", "all", (SECURE,), QUEUED, (SECURE,), flagged=False),
]


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.id)
async def test_direct_delivery_routes_relay_recipients_into_the_queue(
    make_rig: Callable[..., Rig], route: Route
) -> None:
    rig = make_rig(direct=route.direct)
    try:
        reply = await rig.send(route.to, route.flagged)
        assert reply.code == 250, reply
        assert re.fullmatch(route.text, f"{reply.enhanced} {reply.text}"), reply
        entries = await rig.store.queue_entries()
        assert [tuple(r.address for r in e.recipients) for e in entries] == (
            [route.queued] if route.queued else []
        )
        if entries:
            assert entries[0].flagged is route.flagged
        assert rig.transport.received == list(route.delivered)
    finally:
        await rig.store.close()


async def test_a_retried_message_is_queued_once(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(direct="flagged")
    try:
        first = await rig.send((SECURE,))
        again = await rig.send((SECURE,))  # the MTA lost our 250 and sends it again
        assert first.text == again.text
        assert len(await rig.store.queue_entries()) == 1
        trail = await rig.store.audit_entries()
        assert [e.event for e in trail] == ["queued"]
    finally:
        await rig.store.close()


async def test_a_queue_that_cannot_store_answers_451(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(direct="flagged")
    try:

        async def broken(*args: object, **kwargs: object) -> None:
            raise sqlite3.OperationalError("disk I/O error")

        rig.store.enqueue = broken  # type: ignore[method-assign]
        reply = await rig.send((SECURE,))
        assert (reply.code, reply.enhanced) == (451, "4.3.0"), reply
        assert rig.transport.received == []
    finally:
        await rig.store.close()


# ---- body keywords: the raw-bytes check on the event loop, the MIME scan in a thread

KEYWORD = "Child Protection"
B64 = "Q2hpbGQgcHJvdGVjdGlvbiBwbGFuIGF0dGFjaGVk"  # "Child protection plan attached"
PADDING = "x" * 70 + "\r\n"


@pytest.mark.parametrize(
    ("headers", "body", "held"),
    [
        ("", "The child protection plan is attached.\r\n", True),
        ("", "The timetable for next term.\r\n", False),
        ("Content-Transfer-Encoding: base64\r\n", B64 + "\r\n", True),
        ("Content-Transfer-Encoding: base64\r\n", "VGltZXRhYmxl\r\n", False),
        ("", PADDING * 1000 + "child protection\r\n", True),  # past the inline size
        ("", PADDING * 1000, False),
    ],
    ids=["plain", "plain-none", "base64", "base64-none", "large", "large-none"],
)
async def test_a_body_keyword_flags_an_unmarked_message_however_it_is_written(
    make_rig: Callable[..., Rig], headers: str, body: str, held: bool
) -> None:
    made = make_rig()
    try:
        settings = made.filter._settings
        with_keywords = replace(
            settings, classify=replace(settings.classify, body_keywords=(KEYWORD,))
        )
        delivery = Delivery(made.transport, made.store, "gateway.school.test")
        filter_ = Filter(with_keywords, made.posture, made.store, delivery, "gateway.school.test")
        data = (
            f"From: {SENDER}\r\nTo: {INSECURE}\r\nSubject: Timetable\r\n{headers}"
            f"Message-ID: <k1@school.test>\r\n\r\n{body}"
        ).encode()
        reply = await filter_.handle(
            Incoming(
                client_ip="192.0.2.10",
                helo="mta.school.test",
                esmtp=True,
                sender=SENDER,
                mail_options=(),
                recipients=(Recipient(INSECURE),),
                data=data,
            )
        )
        assert reply.code == 250
        said = f"{reply.enhanced} {reply.text}"
        assert re.fullmatch(HELD if held else RELAYED, said), said
        assert (INSECURE in await made.held()) is held
    finally:
        await made.store.close()
