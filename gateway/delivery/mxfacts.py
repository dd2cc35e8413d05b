"""A recipient domain's transport facts for direct delivery, kept a moment for the messages to
the same domain that follow.

Each queued message is planned from the facts of its own delivery, not of its arrival (a
policy may have changed while it waited). Gathering them (MX, the MTA-STS record and policy,
TLSA per host) costs lookups and a policy-cache read per message; a queue that drains a burst
to one domain would repeat them dozens of times a second. Facts are kept for ``seconds`` (two
by default: far below any DNS TTL or MTA-STS max_age they came with), and only settled ones:
anything that failed for now (an MX or TLSA lookup, the policy fetch) is asked again for the
next message, so a retry sees the domain as it is then.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from gateway.core.model import DaneHostStatus, DomainFacts, MxStatus, PolicyStatus, RecordStatus

FACTS_SECONDS = 2.0


class FactsSource(Protocol):
    """A domain's transport facts as the verdict saw them (``posture.DomainChecker``)."""

    async def facts(self, domain: str) -> DomainFacts: ...


class KeptFacts:
    """A ``FactsSource`` that keeps settled facts ``seconds`` for the next messages."""

    def __init__(
        self,
        source: FactsSource,
        seconds: float = FACTS_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._seconds = seconds
        self._clock = clock
        self._kept: dict[str, tuple[float, DomainFacts]] = {}

    async def facts(self, domain: str) -> DomainFacts:
        now = self._clock()
        kept = self._kept.get(domain)
        if kept is not None and now < kept[0]:
            return kept[1]
        facts = await self._source.facts(domain)
        if self._seconds > 0 and settled(facts):
            if len(self._kept) > 1000:  # many domains: drop what has run out
                self._kept = {d: k for d, k in self._kept.items() if now < k[0]}
            self._kept[domain] = (now + self._seconds, facts)
        else:
            self._kept.pop(domain, None)
        return facts


def settled(facts: DomainFacts) -> bool:
    """No part of the facts failed for now (RFC 7672 §2.2.2 and RFC 8461 §5: a temporary
    failure changes the plan, and may be gone by the next message)."""
    return not (
        facts.mx.status is MxStatus.TEMPORARY
        or facts.sts_record.status is RecordStatus.TEMPORARY
        or facts.sts_policy.temporary
        or facts.sts_policy.status is PolicyStatus.FETCH_ERROR
        or any(host.status is DaneHostStatus.TEMPORARY for host in facts.dane.hosts)
    )
