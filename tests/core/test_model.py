"""The value types' little behaviour: DNS outcomes, transport levels, verdicts."""

from __future__ import annotations

import pytest

from gateway.core.model import (
    DaneFacts,
    DaneHostFacts,
    DaneHostStatus,
    DnsAnswer,
    DnsStatus,
    DomainFacts,
    DomainVerdict,
    MxFacts,
    MxStatus,
    PolicyStatus,
    RecordStatus,
    StsPolicyFacts,
    StsRecordFacts,
    TlsRptFacts,
    Transport,
    Verdict,
)


@pytest.mark.parametrize(
    ("status", "negative"),
    [
        (DnsStatus.FOUND, False),
        (DnsStatus.NXDOMAIN, True),
        (DnsStatus.NODATA, True),
        # a temporary error is never "no record"
        (DnsStatus.TEMPORARY, False),
    ],
    ids=["found", "nxdomain", "nodata", "temporary"],
)
def test_dns_answer_negative(status: DnsStatus, negative: bool) -> None:
    assert DnsAnswer[str](status).negative is negative


def test_transport_levels_are_ordered() -> None:
    assert Transport.NONE < Transport.MTA_STS_TESTING < Transport.MTA_STS_ENFORCE < Transport.DANE


@pytest.mark.parametrize(
    ("level", "label"),
    [
        (Transport.NONE, "none"),
        (Transport.MTA_STS_TESTING, "mta-sts-testing"),
        (Transport.MTA_STS_ENFORCE, "mta-sts-enforce"),
        (Transport.DANE, "dane"),
    ],
    ids=["none", "testing", "enforce", "dane"],
)
def test_transport_labels_round_trip(level: Transport, label: str) -> None:
    assert level.label == label
    assert Transport.from_label(label) is level


@pytest.mark.parametrize("label", ["DANE", "mta_sts_enforce", "enforce", ""], ids=str)
def test_transport_from_unknown_label(label: str) -> None:
    with pytest.raises(ValueError, match=label or "^$"):
        Transport.from_label(label)


def test_domain_facts_dane_host() -> None:
    usable = DaneHostFacts("mx1.example.com", DaneHostStatus.USABLE)
    facts = DomainFacts(
        domain="example.com",
        mx=MxFacts(MxStatus.FOUND, ("mx1.example.com", "mx2.example.com")),
        sts_record=StsRecordFacts(RecordStatus.NONE),
        sts_policy=StsPolicyFacts(PolicyStatus.NOT_FETCHED),
        tls_rpt=TlsRptFacts(RecordStatus.NONE),
        dane=DaneFacts(True, (usable,)),
    )
    assert facts.dane_host("mx1.example.com") is usable
    assert facts.dane_host("mx2.example.com") is None


@pytest.mark.parametrize(
    ("verdict", "secure"),
    [(Verdict.SECURE, True), (Verdict.NOT_SECURE, False), (Verdict.UNDETERMINED, False)],
    ids=["secure", "not-secure", "undetermined"],
)
def test_domain_verdict_secure(verdict: Verdict, secure: bool) -> None:
    assert DomainVerdict("example.com", verdict).secure is secure
