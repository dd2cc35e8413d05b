"""The MTA-STS policy cache rules (RFC 8461 §3.3, §5.1), apart from any storage.

Given what the TXT lookup found, what the cache holds and the time, ``plan`` says whether to use
the cached policy, fetch a new one (and what to fall back to if that fails), or report no
policy. Storage lives in ``gateway.stsdb``; the fetch in ``gateway.stsfetch``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from gateway.core.model import (
    PolicySource,
    PolicyStatus,
    RecordStatus,
    StsPolicy,
    StsPolicyFacts,
    StsRecordFacts,
)

# §3.3 asks senders not to hammer a failing policy host; five minutes at least.
FETCH_BACKOFF_SECONDS = 300.0
# §5.1 suggests refreshing cached policies before they expire; about once a day.
REFRESH_AFTER_SECONDS = 86_400.0


@dataclass(frozen=True)
class CachedPolicy:
    domain: str
    id: str
    policy: StsPolicy
    text: str
    fetched_at: float
    expires_at: float  # fetched_at + max_age

    def valid(self, now: float) -> bool:
        return now < self.expires_at

    def facts(self) -> StsPolicyFacts:
        return StsPolicyFacts(
            PolicyStatus.OK,
            self.policy,
            PolicySource.CACHE,
            fetched_at=self.fetched_at,
            expires_at=self.expires_at,
        )


@dataclass(frozen=True)
class FetchFailure:
    """A failed fetch, remembered for the back-off and to report while backing off."""

    id: str
    at: float
    status: PolicyStatus
    error: str
    temporary: bool

    def facts(self) -> StsPolicyFacts:
        return StsPolicyFacts(self.status, temporary=self.temporary, error=self.error)


class Step(StrEnum):
    USE_CACHED = "use-cached"
    FETCH = "fetch"
    BACK_OFF = "back-off"
    NO_POLICY = "no-policy"


@dataclass(frozen=True)
class Plan:
    step: Step
    # The policy to apply if the fetch fails (or while backing off): a cached one still valid.
    fallback: CachedPolicy | None = None
    note: str = ""


def plan(
    record: StsRecordFacts,
    cached: CachedPolicy | None,
    failure: FetchFailure | None,
    now: float,
    *,
    backoff: float = FETCH_BACKOFF_SECONDS,
    refresh_after: float = REFRESH_AFTER_SECONDS,
) -> Plan:
    # An expired policy is never revived, by the TXT id or anything else.
    current = cached if cached is not None and cached.valid(now) else None
    if record.status is not RecordStatus.FOUND:
        # §5.1: TXT record gone, broken, or unreachable: keep a valid cached policy until it
        # expires (a temporary DNS error in particular is never "no policy").
        if current is not None:
            return Plan(Step.USE_CACHED, current, note=f"TXT record {record.status}; cached")
        return Plan(Step.NO_POLICY)
    fresh = current is not None and now - current.fetched_at < refresh_after
    if current is not None and current.id == record.id and fresh:
        return Plan(Step.USE_CACHED, current)
    # Same id but fetched long ago: refresh, so max_age keeps counting from a recent fetch.
    if failure is not None and failure.id == record.id and now - failure.at < backoff:
        return Plan(Step.BACK_OFF, current)
    # §3.3: a new id, or nothing cached: fetch; if that fails keep the valid cached policy.
    return Plan(Step.FETCH, current)


def after_fetch_failure(plan_: Plan, failure: FetchFailure) -> StsPolicyFacts:
    """What to apply after a failed fetch (or during back-off)."""
    if plan_.fallback is not None:
        facts = plan_.fallback.facts()
        return replace(facts, error=f"fetch failed, using cached policy: {failure.error}")
    return failure.facts()
