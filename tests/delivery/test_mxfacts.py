"""Direct delivery asks for a domain's facts once for the messages of the next two seconds, and
again for every message while any part of them failed for now."""

from __future__ import annotations

import dataclasses

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
    StsPolicyFacts,
    StsRecordFacts,
    TlsRptFacts,
)
from gateway.delivery.mxfacts import KeptFacts

DOMAIN = "partner.test"
SETTLED = DomainFacts(
    domain=DOMAIN,
    mx=MxFacts(MxStatus.FOUND, ("mx1.partner.test",)),
    sts_record=StsRecordFacts(RecordStatus.FOUND, "20261201"),
    sts_policy=StsPolicyFacts(PolicyStatus.OK),
    tls_rpt=TlsRptFacts(RecordStatus.NONE),
    dane=DaneFacts(True, (DaneHostFacts("mx1.partner.test", DaneHostStatus.INSECURE),)),
)


class Source:
    def __init__(self, facts: DomainFacts) -> None:
        self.result = facts
        self.asked = 0

    async def facts(self, domain: str) -> DomainFacts:
        self.asked += 1
        return self.result


class Ticks:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_settled_facts_serve_the_next_two_seconds() -> None:
    source, ticks = Source(SETTLED), Ticks()
    kept = KeptFacts(source, 2.0, ticks)
    assert await kept.facts(DOMAIN) is SETTLED
    ticks.now += 1.9
    assert await kept.facts(DOMAIN) is SETTLED
    assert source.asked == 1
    ticks.now += 0.1
    await kept.facts(DOMAIN)
    assert source.asked == 2
    await kept.facts("other.test")
    assert source.asked == 3


TEMPORARY = [
    ("mx-lookup", {"mx": MxFacts(MxStatus.TEMPORARY, error="SERVFAIL")}),
    ("sts-record", {"sts_record": StsRecordFacts(RecordStatus.TEMPORARY)}),
    ("policy-fetch", {"sts_policy": StsPolicyFacts(PolicyStatus.FETCH_ERROR, temporary=True)}),
    (
        "tlsa-lookup",
        {"dane": DaneFacts(True, (DaneHostFacts("mx1.partner.test", DaneHostStatus.TEMPORARY),))},
    ),
]


@pytest.mark.parametrize("change", [c[1] for c in TEMPORARY], ids=[c[0] for c in TEMPORARY])
async def test_facts_that_failed_for_now_are_asked_again_for_each_message(
    change: dict[str, object],
) -> None:
    source = Source(dataclasses.replace(SETTLED, **change))  # type: ignore[arg-type]
    kept = KeptFacts(source, 2.0, Ticks())
    await kept.facts(DOMAIN)
    await kept.facts(DOMAIN)
    assert source.asked == 2
    source.result = SETTLED  # the domain recovered: kept from now on
    await kept.facts(DOMAIN)
    await kept.facts(DOMAIN)
    assert source.asked == 3


async def test_zero_seconds_keeps_nothing() -> None:
    source = Source(SETTLED)
    kept = KeptFacts(source, 0.0, Ticks())
    await kept.facts(DOMAIN)
    await kept.facts(DOMAIN)
    assert source.asked == 2
