"""A short memo of recipient domains' facts, so that a burst of flagged mail to one domain costs
one check of it, not one a message.

A domain's ``DomainFacts`` come from nine or so DNS answers and two reads of the policy cache.
Each answer is cached for its TTL already, but asking again still costs a trip through the
resolver, a parse and two reads on the policy cache's thread for every message. The memo keeps
the facts themselves for a few seconds ([dns] facts_cache_seconds), never longer than the
shortest TTL of the answers they were built from (RFC 1035 §3.2.1: a record is not to be used
past its TTL) nor past the expiry of the MTA-STS policy they name (RFC 8461 §3.3, max_age).

It holds facts only: the allowlist match and the verdict are made from them for each message,
so a reload of the allowlist takes effect at the next message. Facts with anything temporary
in them (a DNS failure, a policy fetch that failed for now) are never kept: a message held for
a temporary failure must have the domain checked again at the next one (fail closed, and
recover as soon as the domain does).
"""

from __future__ import annotations

from collections import OrderedDict

from gateway.core.model import (
    DaneHostStatus,
    DomainFacts,
    MxStatus,
    RecordStatus,
)

# Domains kept at once; the least recently used goes first. A gateway sends to a few hundred
# partner domains; the bound only keeps a mail-merge to thousands of domains from growing it.
MEMO_ENTRIES = 4096


class FactsMemo:
    def __init__(self, seconds: float, entries: int = MEMO_ENTRIES) -> None:
        self.seconds = seconds
        self._entries = entries
        self._memo: OrderedDict[str, tuple[DomainFacts, float]] = OrderedDict()
        # Bumped by ``clear``: a check that started before it must not store what it found.
        self.generation = 0

    @property
    def enabled(self) -> bool:
        return self.seconds > 0

    def __len__(self) -> int:
        return len(self._memo)

    def get(self, domain: str, now: float) -> DomainFacts | None:
        kept = self._memo.get(domain)
        if kept is None:
            return None
        facts, until = kept
        if now >= until:
            del self._memo[domain]
            return None
        self._memo.move_to_end(domain)
        return facts

    def put(
        self,
        domain: str,
        facts: DomainFacts,
        now: float,
        answers_until: float | None,
        generation: int,
    ) -> None:
        """Keep ``facts`` until the earliest of the memo's bound, ``answers_until`` (when the
        first of the DNS answers they came from expires) and the policy's expiry; not at all
        when they hold a temporary failure or the memo was cleared since the check began."""
        if not self.enabled or generation != self.generation or has_temporary(facts):
            return
        until = now + self.seconds
        if answers_until is not None:
            until = min(until, answers_until)
        expires_at = facts.sts_policy.expires_at
        if expires_at is not None:
            until = min(until, expires_at)
        if until <= now:
            return
        self._memo[domain] = (facts, until)
        self._memo.move_to_end(domain)
        while len(self._memo) > self._entries:
            self._memo.popitem(last=False)

    def clear(self) -> None:
        self._memo.clear()
        self.generation += 1


def has_temporary(facts: DomainFacts) -> bool:
    """Whether any part of the facts is a failure that may pass (so the verdict fails closed
    now and must be re-checked at the next message)."""
    if facts.mx.status is MxStatus.TEMPORARY:
        return True
    if RecordStatus.TEMPORARY in (facts.sts_record.status, facts.tls_rpt.status):
        return True
    if facts.sts_policy.temporary:
        return True
    return any(host.status is DaneHostStatus.TEMPORARY for host in facts.dane.hosts)
