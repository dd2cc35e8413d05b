"""decide_domain: is a recipient domain a proven-secure destination? A pure function of facts.

Each case starts from a domain that is secure (allowlisted, one MX host, a valid MTA-STS
``enforce`` policy covering it) and changes the facts that the case is about.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core.allowlist import AllowlistEntry, AllowlistMatch, MatchStatus
from gateway.core.model import (
    DaneFacts,
    DaneHostFacts,
    DaneHostStatus,
    DomainFacts,
    MxFacts,
    MxStatus,
    PolicySource,
    PolicyStatus,
    Reason,
    RecordStatus,
    Requirement,
    StsMode,
    StsPolicy,
    StsPolicyFacts,
    StsRecordFacts,
    TlsRptFacts,
    Transport,
    Verdict,
)
from gateway.core.policy import decide_domain

DOMAIN = "example.com"
MX1, MX2 = "mx1.example.com", "mx2.backup.example.com"
PATTERNS = (MX1, "*.backup.example.com")

ALLOWED = AllowlistMatch(MatchStatus.ALLOWED, AllowlistEntry(DOMAIN, False))
EXPIRED = AllowlistMatch(
    MatchStatus.EXPIRED, AllowlistEntry(DOMAIN, False, expires=dt.date(2020, 1, 1))
)
UNLISTED = AllowlistMatch(MatchStatus.NONE)

ENFORCE = Requirement()
TESTING_OK = Requirement(minimum=Transport.MTA_STS_TESTING)
NEED_DANE = Requirement(minimum=Transport.DANE)
NEED_RPT = Requirement(require_tls_rpt=True)

S = DaneHostStatus


@dataclass(frozen=True)
class Facts:
    """A builder of DomainFacts; every field defaults to the secure case."""

    domain: str = DOMAIN
    mx_status: MxStatus = MxStatus.FOUND
    hosts: tuple[str, ...] = (MX1,)
    dnssec: bool = False
    record: RecordStatus = RecordStatus.FOUND
    policy_status: PolicyStatus = PolicyStatus.OK
    mode: StsMode = StsMode.ENFORCE
    patterns: tuple[str, ...] = PATTERNS
    source: PolicySource = PolicySource.FETCHED
    temporary: bool = False
    tls_rpt: RecordStatus = RecordStatus.FOUND
    resolver_trusted: bool = False
    dane: Mapping[str, DaneHostStatus] = field(default_factory=dict)

    def build(self) -> DomainFacts:
        ok = self.policy_status is PolicyStatus.OK
        policy = StsPolicy(self.mode, 86_400, self.patterns) if ok else None
        return DomainFacts(
            domain=self.domain,
            mx=MxFacts(self.mx_status, self.hosts, dnssec=self.dnssec),
            sts_record=StsRecordFacts(self.record, id="20240101" if self.record else ""),
            sts_policy=StsPolicyFacts(
                self.policy_status,
                policy,
                self.source if ok else PolicySource.NONE,
                temporary=self.temporary,
            ),
            tls_rpt=TlsRptFacts(
                self.tls_rpt,
                ("mailto:tlsrpt@example.com",) if self.tls_rpt is RecordStatus.FOUND else (),
            ),
            dane=DaneFacts(
                self.resolver_trusted,
                tuple(DaneHostFacts(host, status) for host, status in self.dane.items()),
            ),
        )


def dane(**overrides: object) -> Facts:
    """DANE available: a trusted validating resolver and a DNSSEC-signed MX RRset."""
    base: dict[str, object] = {"resolver_trusted": True, "dnssec": True}
    return Facts(**(base | overrides))  # type: ignore[arg-type]


NO_STS = {"record": RecordStatus.NONE, "policy_status": PolicyStatus.NOT_FETCHED}

CASES: list[tuple[str, AllowlistMatch, Facts, Requirement, Verdict, set[Reason], Transport]] = [
    # --- MTA-STS -------------------------------------------------------------------------------
    ("secure-enforce", ALLOWED, Facts(), ENFORCE, Verdict.SECURE, set(), Transport.MTA_STS_ENFORCE),
    (
        "secure-two-hosts-literal-and-wildcard",
        ALLOWED,
        Facts(hosts=(MX1, MX2)),
        ENFORCE,
        Verdict.SECURE,
        set(),
        Transport.MTA_STS_ENFORCE,
    ),
    (
        "secure-from-cached-policy",
        ALLOWED,
        Facts(source=PolicySource.CACHE, record=RecordStatus.INVALID),
        ENFORCE,
        Verdict.SECURE,
        set(),
        Transport.MTA_STS_ENFORCE,
    ),
    (
        "testing-is-not-secure",
        ALLOWED,
        Facts(mode=StsMode.TESTING),
        ENFORCE,
        Verdict.NOT_SECURE,
        {Reason.STS_MODE_TESTING},
        Transport.MTA_STS_TESTING,
    ),
    (
        "testing-accepted-by-operator",
        ALLOWED,
        Facts(mode=StsMode.TESTING),
        TESTING_OK,
        Verdict.SECURE,
        set(),
        Transport.MTA_STS_TESTING,
    ),
    (
        "enforce-meets-a-testing-minimum",
        ALLOWED,
        Facts(),
        TESTING_OK,
        Verdict.SECURE,
        set(),
        Transport.MTA_STS_ENFORCE,
    ),
    (
        "testing-with-uncovered-host",
        ALLOWED,
        Facts(mode=StsMode.TESTING, hosts=("mx.elsewhere.test",)),
        TESTING_OK,
        Verdict.NOT_SECURE,
        {Reason.STS_MX_MISMATCH},
        Transport.NONE,
    ),
    (
        "mode-none",
        ALLOWED,
        Facts(mode=StsMode.NONE, patterns=()),
        ENFORCE,
        Verdict.NOT_SECURE,
        {Reason.STS_MODE_NONE},
        Transport.NONE,
    ),
    (
        "mode-none-even-when-patterns-cover",
        ALLOWED,
        Facts(mode=StsMode.NONE),
        TESTING_OK,
        Verdict.NOT_SECURE,
        {Reason.STS_MODE_NONE},
        Transport.NONE,
    ),
    (
        "one-of-two-mx-uncovered",
        ALLOWED,
        Facts(hosts=(MX1, "mx.elsewhere.test")),
        ENFORCE,
        Verdict.NOT_SECURE,
        {Reason.STS_MX_MISMATCH},
        Transport.NONE,
    ),
    (
        "wildcard-covers-one-label-only",
        ALLOWED,
        Facts(hosts=("a.b.backup.example.com",)),
        ENFORCE,
        Verdict.NOT_SECURE,
        {Reason.STS_MX_MISMATCH},
        Transport.NONE,
    ),
    (
        "wildcard-does-not-cover-its-parent",
        ALLOWED,
        Facts(hosts=("backup.example.com",)),
        ENFORCE,
        Verdict.NOT_SECURE,
        {Reason.STS_MX_MISMATCH},
        Transport.NONE,
    ),
    (
        "sts-no-record",
        ALLOWED,
        Facts(**NO_STS),  # type: ignore[arg-type]
        ENFORCE,
        Verdict.NOT_SECURE,
        {Reason.STS_NO_RECORD},
        Transport.NONE,
    ),
    (
        "sts-multiple-records",
        ALLOWED,
        Facts(record=RecordStatus.MULTIPLE, policy_status=PolicyStatus.NOT_FETCHED),
        ENFORCE,
        Verdict.NOT_SECURE,
        {Reason.STS_MULTIPLE_RECORDS},
        Transport.NONE,
    ),
    (
        "sts-record-invalid",
        ALLOWED,
        Facts(record=RecordStatus.INVALID, policy_status=PolicyStatus.NOT_FETCHED),
        ENFORCE,
        Verdict.NOT_SECURE,
        {Reason.STS_RECORD_INVALID},
        Transport.NONE,
    ),
    (
        "sts-txt-temporary-without-cache",
        ALLOWED,
        Facts(record=RecordStatus.TEMPORARY, policy_status=PolicyStatus.NOT_FETCHED),
        ENFORCE,
        Verdict.UNDETERMINED,
        {Reason.DNS_TEMPORARY_ERROR},
        Transport.NONE,
    ),
    (
        "sts-txt-temporary-with-cache",
        ALLOWED,
        Facts(record=RecordStatus.TEMPORARY, source=PolicySource.CACHE),
        ENFORCE,
        Verdict.SECURE,
        set(),
        Transport.MTA_STS_ENFORCE,
    ),
    (
        "fetch-error-temporary",
        ALLOWED,
        Facts(policy_status=PolicyStatus.FETCH_ERROR, temporary=True),
        ENFORCE,
        Verdict.UNDETERMINED,
        {Reason.STS_POLICY_FETCH_ERROR},
        Transport.NONE,
    ),
    (
        "fetch-error-permanent",
        ALLOWED,
        Facts(policy_status=PolicyStatus.FETCH_ERROR, temporary=False),
        ENFORCE,
        Verdict.NOT_SECURE,
        {Reason.STS_POLICY_FETCH_ERROR},
        Transport.NONE,
    ),
    (
        "webpki-invalid",
        ALLOWED,
        Facts(policy_status=PolicyStatus.WEBPKI_INVALID),
        ENFORCE,
        Verdict.NOT_SECURE,
        {Reason.STS_WEBPKI_INVALID},
        Transport.NONE,
    ),
    (
        "policy-invalid",
        ALLOWED,
        Facts(policy_status=PolicyStatus.INVALID),
        ENFORCE,
        Verdict.NOT_SECURE,
        {Reason.STS_POLICY_INVALID},
        Transport.NONE,
    ),
    # --- MX ------------------------------------------------------------------------------------
    (
        "null-mx",
        ALLOWED,
        Facts(mx_status=MxStatus.NULL, hosts=()),
        ENFORCE,
        Verdict.NOT_SECURE,
        {Reason.NULL_MX},
        Transport.NONE,
    ),
    (
        "nxdomain",
        ALLOWED,
        Facts(mx_status=MxStatus.NXDOMAIN, hosts=()),
        ENFORCE,
        Verdict.NOT_SECURE,
        {Reason.NO_SUCH_DOMAIN},
        Transport.NONE,
    ),
    (
        "mx-temporary",
        ALLOWED,
        Facts(mx_status=MxStatus.TEMPORARY, hosts=()),
        ENFORCE,
        Verdict.UNDETERMINED,
        {Reason.DNS_TEMPORARY_ERROR},
        Transport.NONE,
    ),
    (
        "implicit-mx-covered",
        ALLOWED,
        Facts(mx_status=MxStatus.IMPLICIT, hosts=(), patterns=(DOMAIN,)),
        ENFORCE,
        Verdict.SECURE,
        set(),
        Transport.MTA_STS_ENFORCE,
    ),
    (
        "implicit-mx-domain-must-be-covered",
        ALLOWED,
        Facts(mx_status=MxStatus.IMPLICIT, hosts=()),
        ENFORCE,
        Verdict.NOT_SECURE,
        {Reason.STS_MX_MISMATCH},
        Transport.NONE,
    ),
    (
        "implicit-mx-wildcard-does-not-cover-the-domain",
        ALLOWED,
        Facts(mx_status=MxStatus.IMPLICIT, hosts=(), patterns=("*.example.com",)),
        ENFORCE,
        Verdict.NOT_SECURE,
        {Reason.STS_MX_MISMATCH},
        Transport.NONE,
    ),
    # --- allowlist -----------------------------------------------------------------------------
    (
        "not-allowlisted",
        UNLISTED,
        Facts(),
        ENFORCE,
        Verdict.NOT_SECURE,
        {Reason.NOT_ALLOWLISTED},
        Transport.MTA_STS_ENFORCE,
    ),
    (
        "allowlist-expired",
        EXPIRED,
        Facts(),
        ENFORCE,
        Verdict.NOT_SECURE,
        {Reason.ALLOWLIST_EXPIRED},
        Transport.MTA_STS_ENFORCE,
    ),
    (
        "not-allowlisted-beats-mx-temporary",
        UNLISTED,
        Facts(mx_status=MxStatus.TEMPORARY, hosts=()),
        ENFORCE,
        Verdict.NOT_SECURE,
        {Reason.NOT_ALLOWLISTED, Reason.DNS_TEMPORARY_ERROR},
        Transport.NONE,
    ),
    (
        "allowlist-expired-beats-fetch-temporary",
        EXPIRED,
        Facts(policy_status=PolicyStatus.FETCH_ERROR, temporary=True),
        ENFORCE,
        Verdict.NOT_SECURE,
        {Reason.ALLOWLIST_EXPIRED, Reason.STS_POLICY_FETCH_ERROR},
        Transport.NONE,
    ),
    # --- TLS-RPT -------------------------------------------------------------------------------
    (
        "tls-rpt-not-required",
        ALLOWED,
        Facts(tls_rpt=RecordStatus.NONE),
        ENFORCE,
        Verdict.SECURE,
        set(),
        Transport.MTA_STS_ENFORCE,
    ),
    (
        "tls-rpt-required-found",
        ALLOWED,
        Facts(),
        NEED_RPT,
        Verdict.SECURE,
        set(),
        Transport.MTA_STS_ENFORCE,
    ),
    (
        "tls-rpt-required-none",
        ALLOWED,
        Facts(tls_rpt=RecordStatus.NONE),
        NEED_RPT,
        Verdict.NOT_SECURE,
        {Reason.NO_TLS_RPT},
        Transport.MTA_STS_ENFORCE,
    ),
    (
        "tls-rpt-required-invalid",
        ALLOWED,
        Facts(tls_rpt=RecordStatus.INVALID),
        NEED_RPT,
        Verdict.NOT_SECURE,
        {Reason.NO_TLS_RPT},
        Transport.MTA_STS_ENFORCE,
    ),
    (
        "tls-rpt-required-multiple",
        ALLOWED,
        Facts(tls_rpt=RecordStatus.MULTIPLE),
        NEED_RPT,
        Verdict.NOT_SECURE,
        {Reason.NO_TLS_RPT},
        Transport.MTA_STS_ENFORCE,
    ),
    (
        "tls-rpt-required-temporary",
        ALLOWED,
        Facts(tls_rpt=RecordStatus.TEMPORARY),
        NEED_RPT,
        Verdict.UNDETERMINED,
        {Reason.DNS_TEMPORARY_ERROR},
        Transport.MTA_STS_ENFORCE,
    ),
    # --- DANE ----------------------------------------------------------------------------------
    (
        "dane-on-all-hosts-without-mta-sts",
        ALLOWED,
        dane(hosts=(MX1, MX2), dane={MX1: S.USABLE, MX2: S.USABLE}, **NO_STS),
        ENFORCE,
        Verdict.SECURE,
        set(),
        Transport.DANE,
    ),
    (
        "dane-on-uncovered-host",
        ALLOWED,
        dane(hosts=("mx.elsewhere.test",), dane={"mx.elsewhere.test": S.USABLE}),
        ENFORCE,
        Verdict.SECURE,
        set(),
        Transport.DANE,
    ),
    (
        "dane-unusable-not-rescued-by-mta-sts",
        ALLOWED,
        dane(dane={MX1: S.UNUSABLE}),
        ENFORCE,
        Verdict.NOT_SECURE,
        {Reason.DANE_UNUSABLE},
        Transport.NONE,
    ),
    (
        "dane-unusable-on-one-host",
        ALLOWED,
        dane(hosts=(MX1, MX2), dane={MX1: S.USABLE, MX2: S.UNUSABLE}),
        ENFORCE,
        Verdict.NOT_SECURE,
        {Reason.DANE_UNUSABLE},
        Transport.NONE,
    ),
    (
        "tlsa-temporary-not-rescued-by-mta-sts",
        ALLOWED,
        dane(dane={MX1: S.TEMPORARY}),
        ENFORCE,
        Verdict.UNDETERMINED,
        {Reason.DNS_TEMPORARY_ERROR},
        Transport.NONE,
    ),
    (
        "dane-on-one-host-mta-sts-on-the-other",
        ALLOWED,
        dane(hosts=("mx.elsewhere.test", MX1), dane={"mx.elsewhere.test": S.USABLE, MX1: S.NONE}),
        ENFORCE,
        Verdict.SECURE,
        set(),
        Transport.MTA_STS_ENFORCE,
    ),
    (
        "dane-on-one-host-nothing-on-the-other",
        ALLOWED,
        dane(hosts=(MX1, MX2), dane={MX1: S.USABLE, MX2: S.INSECURE}, **NO_STS),
        ENFORCE,
        Verdict.NOT_SECURE,
        {Reason.STS_NO_RECORD},
        Transport.NONE,
    ),
    (
        "no-tlsa-falls-back-to-mta-sts",
        ALLOWED,
        dane(dane={MX1: S.NONE}),
        ENFORCE,
        Verdict.SECURE,
        set(),
        Transport.MTA_STS_ENFORCE,
    ),
    (
        "host-without-dane-facts-falls-back-to-mta-sts",
        ALLOWED,
        dane(),
        ENFORCE,
        Verdict.SECURE,
        set(),
        Transport.MTA_STS_ENFORCE,
    ),
    (
        "resolver-untrusted-dane-ignored",
        ALLOWED,
        Facts(resolver_trusted=False, dnssec=True, dane={MX1: S.USABLE}, **NO_STS),  # type: ignore[arg-type]
        ENFORCE,
        Verdict.NOT_SECURE,
        {Reason.STS_NO_RECORD},
        Transport.NONE,
    ),
    (
        "resolver-untrusted-unusable-ignored",
        ALLOWED,
        Facts(resolver_trusted=False, dnssec=True, dane={MX1: S.UNUSABLE}),
        ENFORCE,
        Verdict.SECURE,
        set(),
        Transport.MTA_STS_ENFORCE,
    ),
    (
        "mx-not-dnssec-dane-ignored",
        ALLOWED,
        dane(dnssec=False, dane={MX1: S.USABLE}, **NO_STS),
        ENFORCE,
        Verdict.NOT_SECURE,
        {Reason.STS_NO_RECORD},
        Transport.NONE,
    ),
    (
        "minimum-dane-met",
        ALLOWED,
        dane(dane={MX1: S.USABLE}, **NO_STS),
        NEED_DANE,
        Verdict.SECURE,
        set(),
        Transport.DANE,
    ),
    (
        "minimum-dane-enforce-alone-untrusted-resolver",
        ALLOWED,
        Facts(),
        NEED_DANE,
        Verdict.NOT_SECURE,
        {Reason.DANE_RESOLVER_UNTRUSTED},
        Transport.NONE,
    ),
    (
        "minimum-dane-enforce-alone-mx-not-dnssec",
        ALLOWED,
        dane(dnssec=False),
        NEED_DANE,
        Verdict.NOT_SECURE,
        {Reason.DANE_NOT_DNSSEC},
        Transport.NONE,
    ),
    (
        "minimum-dane-enforce-alone-no-tlsa",
        ALLOWED,
        dane(dane={MX1: S.NONE}),
        NEED_DANE,
        Verdict.NOT_SECURE,
        {Reason.DANE_NO_TLSA},
        Transport.NONE,
    ),
    (
        "minimum-dane-enforce-alone-host-insecure",
        ALLOWED,
        dane(dane={MX1: S.INSECURE}),
        NEED_DANE,
        Verdict.NOT_SECURE,
        {Reason.DANE_NOT_DNSSEC},
        Transport.NONE,
    ),
    (
        "minimum-dane-one-host-short",
        ALLOWED,
        dane(hosts=(MX1, MX2), dane={MX1: S.USABLE, MX2: S.NONE}),
        NEED_DANE,
        Verdict.NOT_SECURE,
        {Reason.DANE_NO_TLSA},
        Transport.NONE,
    ),
    (
        "minimum-dane-tlsa-temporary",
        ALLOWED,
        dane(dane={MX1: S.TEMPORARY}),
        NEED_DANE,
        Verdict.UNDETERMINED,
        {Reason.DNS_TEMPORARY_ERROR},
        Transport.NONE,
    ),
]


@pytest.mark.parametrize(
    ("match", "facts", "requirement", "verdict", "reasons", "transport"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_decide_domain(
    match: AllowlistMatch,
    facts: Facts,
    requirement: Requirement,
    verdict: Verdict,
    reasons: set[Reason],
    transport: Transport,
) -> None:
    result = decide_domain(match, facts.build(), requirement)
    assert result.domain == facts.domain
    assert (result.verdict, set(result.reasons)) == (verdict, reasons)
    assert len(result.reasons) == len(set(result.reasons)), "a reason is listed twice"
    assert result.secure is (verdict is Verdict.SECURE)
    assert result.transport is transport


def test_case_ids_are_unique() -> None:
    ids = [case[0] for case in CASES]
    assert len(ids) == len(set(ids))


def test_permanent_reasons_come_before_temporary_ones() -> None:
    facts = Facts(mx_status=MxStatus.TEMPORARY, hosts=()).build()
    result = decide_domain(UNLISTED, facts, ENFORCE)
    assert result.reasons == (Reason.NOT_ALLOWLISTED, Reason.DNS_TEMPORARY_ERROR)


def test_mx_mismatch_reason_given_once_for_several_hosts() -> None:
    facts = Facts(hosts=("a.elsewhere.test", "b.elsewhere.test")).build()
    assert decide_domain(ALLOWED, facts, ENFORCE).reasons == (Reason.STS_MX_MISMATCH,)


# --- properties over arbitrary facts ---------------------------------------------------------

HOSTS = st.sampled_from([MX1, MX2, "mx.elsewhere.test", "a.b.backup.example.com"])
facts_strategy = st.builds(
    Facts,
    mx_status=st.sampled_from(MxStatus),
    hosts=st.lists(HOSTS, min_size=1, max_size=3, unique=True).map(tuple),
    dnssec=st.booleans(),
    record=st.sampled_from(RecordStatus),
    policy_status=st.sampled_from(PolicyStatus),
    mode=st.sampled_from(StsMode),
    source=st.sampled_from([PolicySource.FETCHED, PolicySource.CACHE]),
    temporary=st.booleans(),
    tls_rpt=st.sampled_from(RecordStatus),
    resolver_trusted=st.booleans(),
    dane=st.dictionaries(HOSTS, st.sampled_from(DaneHostStatus), max_size=4),
)
requirements = st.builds(
    Requirement, minimum=st.sampled_from(Transport), require_tls_rpt=st.booleans()
)
matches = st.sampled_from([ALLOWED, EXPIRED, UNLISTED])


@settings(database=None, max_examples=300, deadline=None)
@given(match=matches, facts=facts_strategy, requirement=requirements)
def test_decide_domain_fails_closed(
    match: AllowlistMatch, facts: Facts, requirement: Requirement
) -> None:
    built = facts.build()
    result = decide_domain(match, built, requirement)
    assert (result.verdict is Verdict.SECURE) is (result.reasons == ())
    if result.verdict is Verdict.SECURE:
        assert match.status is MatchStatus.ALLOWED
        assert built.mx.status in (MxStatus.FOUND, MxStatus.IMPLICIT)
        assert result.transport >= requirement.minimum
        if requirement.require_tls_rpt:
            assert built.tls_rpt.status is RecordStatus.FOUND
    if match.status is not MatchStatus.ALLOWED:
        assert result.verdict is Verdict.NOT_SECURE
    if result.verdict is Verdict.UNDETERMINED:
        assert Reason.DNS_TEMPORARY_ERROR in result.reasons or (
            Reason.STS_POLICY_FETCH_ERROR in result.reasons and built.sts_policy.temporary
        )


@settings(database=None, max_examples=300, deadline=None)
@given(facts=facts_strategy)
def test_every_host_must_reach_the_level(facts: Facts) -> None:
    """Under the default requirement, secure means every MX host has usable DANE (with a
    trusted resolver and a signed MX RRset) or is covered by a valid enforce policy."""
    built = facts.build()
    result = decide_domain(ALLOWED, built, ENFORCE)
    if not result.secure:
        return
    hosts = built.mx.hosts if built.mx.status is MxStatus.FOUND else (built.domain,)
    dane_on = built.dane.resolver_trusted and built.mx.dnssec
    policy = built.sts_policy.policy
    for host in hosts:
        host_facts = built.dane_host(host)
        status = host_facts.status if host_facts else DaneHostStatus.INSECURE
        if dane_on and status is DaneHostStatus.USABLE:
            continue
        assert not (dane_on and status in (DaneHostStatus.UNUSABLE, DaneHostStatus.TEMPORARY))
        assert policy is not None
        assert built.sts_policy.status is PolicyStatus.OK
        assert policy.mode is StsMode.ENFORCE
        assert host == MX1 or host.endswith(".backup.example.com")
        assert host.count(".") == (2 if host == MX1 else 3)
