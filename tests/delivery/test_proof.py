"""The proof of delivery: for flagged mail, one ``delivered`` entry per recipient the upstream
took, committed in the same journal write as "sent", saying how the copy left; nothing for
unflagged mail; nothing invented when the transport does not say."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import Any

import pytest

from gateway.audit.proofwords import confirmation_words, delivered_words
from gateway.delivery.deliver import Delivery, Trace
from gateway.delivery.transport import Evidence, PeerAuth, Recipient, Transaction
from gateway.store import AuditRecord
from support.transports import REFUSE_RCPT, FakeTransport

A, B, C = "a@partner.test", "b@partner.test", "c@partner.test"
AT = dt.datetime(2026, 12, 1, 10, 2, 7, tzinfo=dt.UTC).timestamp()
TRACE = Trace("mta.school.test", "127.0.0.1", "ESMTP", "q1", "flagged", message_id="<m1@s.test>")

MX = Evidence(
    "mx1.partner.test", "127.0.0.5", 25, "TLSv1.3", "TLS_AES_256_GCM_SHA384", PeerAuth.MTA_STS, AT
)
DANE = dataclasses.replace(MX, authenticated=PeerAuth.DANE_EE)
RELAY = Evidence(
    "relay.school.test",
    "127.0.0.9",
    587,
    "TLSv1.2",
    "ECDHE-RSA-AES256-GCM-SHA384",
    PeerAuth.SMARTHOST,
    AT,
)
PLAIN_RELAY = Evidence("relay.school.test", "127.0.0.9", 25, at=AT)


class Journal:
    def __init__(self) -> None:
        self.writes: list[tuple[str, tuple[str, ...], list[AuditRecord]]] = []

    async def relayed(self, key: str) -> frozenset[str]:
        return frozenset(a for k, rs, _ in self.writes if k == key for a in rs)

    async def record_relayed(
        self, key: str, recipients: Sequence[str], audit: Sequence[AuditRecord] = ()
    ) -> None:
        self.writes.append((key, tuple(recipients), list(audit)))


def flagged(*recipients: str, flag: bool = True) -> Transaction:
    return Transaction(
        "head@school.test", tuple(Recipient(r) for r in recipients), b"\r\n", flagged=flag
    )


async def deliver(
    evidence: Evidence | None, *recipients: str, skipped: tuple[str, ...] = (), flag: bool = True
) -> tuple[FakeTransport, Journal, Any]:
    transport = FakeTransport(evidence=evidence, skipped=skipped)
    transport.answers[C] = REFUSE_RCPT
    journal = Journal()
    report = await Delivery(transport, journal, "gw.school.test").deliver(
        flagged(*recipients, flag=flag), "k", trace=TRACE
    )
    return transport, journal, report


@pytest.mark.parametrize(
    ("evidence", "route", "auth", "host", "tls"),
    [
        (MX, "mx", "mta-sts-webpki", "mx1.partner.test", "TLSv1.3"),
        (DANE, "mx", "dane-ee", "mx1.partner.test", "TLSv1.3"),
        (RELAY, "smarthost", "smarthost-verified", "relay.school.test", "TLSv1.2"),
        (PLAIN_RELAY, "smarthost", "none", "relay.school.test", ""),
        (None, "smarthost", "none", "", ""),  # the transport did not say: nothing invented
    ],
)
async def test_each_accepted_recipient_of_flagged_mail_gets_a_proof(
    evidence: Evidence | None, route: str, auth: str, host: str, tls: str
) -> None:
    _, journal, report = await deliver(evidence, A, B, C)
    [(key, recipients, audit)] = journal.writes  # one write: "sent" and proof agree
    assert (key, recipients) == ("k", (A, B))
    assert [r.event for r in audit] == ["delivered", "delivered"]
    first = audit[0].data
    assert first["recipient"] == A
    assert audit[1].data["recipient"] == B
    assert (first["route"], first["authenticated"], first["host"]) == (route, auth, host)
    assert first["tls_version"] == tls
    assert first["queue_id"] == "q1"
    assert first["message_id"] == "<m1@s.test>"
    assert first["reply"] == "250 2.0.0 Ok: queued as FAKE"
    if evidence is not None:
        assert first["at"] == "2026-12-01T10:02:07+00:00"
        assert first["address"] == evidence.address
        assert first["port"] == evidence.port
    assert set(report.proof) == {A, B}


async def test_the_mx_hosts_passed_over_are_part_of_the_proof() -> None:
    skipped = ("mx0.partner.test [127.0.0.4]: no STARTTLS offered",)
    _, journal, _ = await deliver(MX, A, skipped=skipped)
    assert journal.writes[0][2][0].data["skipped"] == list(skipped)


async def test_unflagged_mail_gets_no_proof() -> None:
    _, journal, report = await deliver(MX, A, flag=False)
    assert journal.writes == [("k", (A,), [])]
    assert report.proof == {}


async def test_a_release_proves_under_its_hold() -> None:
    journal = Journal()
    release = dataclasses.replace(TRACE, hold_id="h123")
    await Delivery(FakeTransport(evidence=MX), journal, "gw").deliver(
        flagged(A), "release:h123", trace=release
    )
    [record] = journal.writes[0][2]
    assert (record.event, record.hold_id) == ("delivered", "h123")


def test_the_proof_reads_as_a_sentence() -> None:
    _, _, proof = (
        {},
        {},
        {
            "recipient": A,
            "route": "mx",
            "host": "mx1.partner.test",
            "address": "127.0.0.5",
            "tls_version": "TLSv1.3",
            "authenticated": "mta-sts-webpki",
            "at": "2026-12-01T10:02:07+00:00",
            "reply": "250 2.0.0 Ok: queued as 12",
        },
    )
    text = delivered_words(proof)
    assert text.startswith(
        f"Delivered to {A} via mx1.partner.test [127.0.0.5] over TLSv1.3, "
        "certificate verified by MTA-STS, at "
    )
    assert "10:02 UTC" in text
    assert text.endswith(" — 250 2.0.0 Ok: queued as 12")
    told = confirmation_words(proof)
    assert told.startswith("delivered to mx1.partner.test over TLS 1.3, certificate verified by")
    plain = delivered_words({**proof, "tls_version": "", "reply": ""})
    assert "without TLS" in plain
