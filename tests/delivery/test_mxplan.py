"""Which MX hosts a message may go to and what each must prove, from the facts a verdict saw:
the cases the rig's zones do not spell out (implicit MX, DNS failures, DANE beside MTA-STS)."""

from __future__ import annotations

import pytest

from gateway.core.model import (
    DaneFacts,
    DaneHostFacts,
    DaneHostStatus,
    DomainFacts,
    MxFacts,
    MxStatus,
    PolicyStatus,
    RecordStatus,
    StsMode,
    StsPolicy,
    StsPolicyFacts,
    StsRecordFacts,
    TlsaRecord,
    TlsRptFacts,
)
from gateway.delivery.mxplan import Requirement, plan
from gateway.errors import DeliveryFailed

DOMAIN = "partner.test"
MX1, MX2 = f"mx1.{DOMAIN}", f"mx2.{DOMAIN}"
TLSA = (TlsaRecord(3, 1, 1, bytes(32)),)
TWO_MX = MxFacts(MxStatus.FOUND, (MX1, MX2), dnssec=True)


def facts(
    mx: MxFacts = TWO_MX,
    policy_mx: tuple[str, ...] | None = None,
    mode: StsMode = StsMode.ENFORCE,
    dane: dict[str, DaneHostStatus] | None = None,
) -> DomainFacts:
    sts = StsPolicyFacts(PolicyStatus.NOT_FETCHED)
    if policy_mx is not None:
        sts = StsPolicyFacts(PolicyStatus.OK, StsPolicy(mode, 86400, policy_mx))
    hosts = tuple(
        DaneHostFacts(h, status, TLSA if status is DaneHostStatus.USABLE else ())
        for h, status in (dane or {}).items()
    )
    return DomainFacts(
        DOMAIN,
        mx,
        StsRecordFacts(RecordStatus.FOUND, "a"),
        sts,
        TlsRptFacts(RecordStatus.NONE),
        DaneFacts(True, hosts),
    )


E, D, OPP, U = Requirement.ENCRYPT, Requirement.DANE, Requirement.OPPORTUNISTIC, Requirement.MTA_STS
CASES = [
    # id, facts, flagged, [(host, requirement)], passed-over phrases
    ("implicit-mx", facts(MxFacts(MxStatus.IMPLICIT)), False, [(DOMAIN, OPP)], []),
    ("implicit-mx-flagged", facts(MxFacts(MxStatus.IMPLICIT)), True, [], ["neither DANE"]),
    ("sts-names-mx2", facts(policy_mx=(MX2,)), True, [(MX2, U)], ["not named by the MTA-STS"]),
    ("sts-wildcard", facts(policy_mx=(f"*.{DOMAIN}",)), True, [(MX1, U), (MX2, U)], []),
    (
        "sts-testing-flagged",
        facts(policy_mx=(MX1, MX2), mode=StsMode.TESTING),
        True,
        [],
        ["neither", "neither"],
    ),
    (
        "sts-testing-unflagged",
        facts(policy_mx=(MX1,), mode=StsMode.TESTING),
        False,
        [(MX1, OPP), (MX2, OPP)],
        [],
    ),
    # RFC 7672 §2.2: DANE governs the hosts with usable TLSA, whatever the policy says.
    (
        "dane-before-sts",
        facts(policy_mx=(MX2,), dane={MX1: DaneHostStatus.USABLE}),
        True,
        [(MX1, D), (MX2, U)],
        [],
    ),
    (
        "tlsa-temporary-no-fallback",
        facts(policy_mx=(MX1, MX2), dane={MX1: DaneHostStatus.TEMPORARY}),
        True,
        [(MX2, U)],
        ["TLSA lookup failed"],
    ),
    (
        "tlsa-unusable-unflagged",
        facts(dane={MX1: DaneHostStatus.UNUSABLE}),
        False,
        [(MX1, E), (MX2, OPP)],
        [],
    ),
    (
        "tlsa-insecure-is-no-dane",
        facts(dane={MX1: DaneHostStatus.INSECURE}),
        True,
        [],
        ["neither", "neither"],
    ),
]


@pytest.mark.parametrize(
    ("given", "flagged", "expected", "why"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_plan(
    given: DomainFacts,
    flagged: bool,
    expected: list[tuple[str, Requirement]],
    why: list[str],
) -> None:
    result = plan(given, flagged)
    assert [(c.host, c.requirement) for c in result.candidates] == expected
    assert len(result.passed_over) == len(why)
    for line, phrase in zip(result.passed_over, why, strict=True):
        assert phrase in line


@pytest.mark.parametrize(
    ("mx", "code", "temporary"),
    [
        (MxFacts(MxStatus.NULL), 556, False),
        (MxFacts(MxStatus.NXDOMAIN), 550, False),
        (MxFacts(MxStatus.TEMPORARY, error="SERVFAIL"), 451, True),
    ],
    ids=["null-mx", "no-such-domain", "dns-temporary"],
)
def test_no_hosts(mx: MxFacts, code: int, temporary: bool) -> None:
    with pytest.raises(DeliveryFailed) as caught:
        plan(facts(mx), flagged=False)
    assert (caught.value.code, caught.value.temporary, caught.value.stage) == (
        code,
        temporary,
        "MX",
    )
