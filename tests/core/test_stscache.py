"""The MTA-STS policy cache rules (RFC 8461 §3.3, §5.1), apart from storage: ``plan``."""

from __future__ import annotations

import pytest

from gateway.core import stscache
from gateway.core.model import (
    PolicySource,
    PolicyStatus,
    RecordStatus,
    StsMode,
    StsPolicy,
    StsPolicyFacts,
    StsRecordFacts,
)
from gateway.core.stscache import (
    FETCH_BACKOFF_SECONDS,
    REFRESH_AFTER_SECONDS,
    CachedPolicy,
    FetchFailure,
    Plan,
    Step,
)

T0 = 1_800_000_000.0  # when the cached policy was fetched
MAX_AGE = 7 * 86_400
POLICY = StsPolicy(StsMode.ENFORCE, MAX_AGE, ("mx.example.com",))
CACHED = CachedPolicy(
    domain="example.com",
    id="old1",
    policy=POLICY,
    text="version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: 604800\n",
    fetched_at=T0,
    expires_at=T0 + MAX_AGE,
)
HOUR = 3600.0
VALID = T0 + HOUR  # the cache is fresh and valid
STALE = T0 + REFRESH_AFTER_SECONDS + HOUR  # valid, but due a refresh
EXPIRED = T0 + MAX_AGE + 1


def found(record_id: str) -> StsRecordFacts:
    return StsRecordFacts(RecordStatus.FOUND, id=record_id)


def failed(record_id: str, at: float, *, temporary: bool = True) -> FetchFailure:
    status = PolicyStatus.FETCH_ERROR if temporary else PolicyStatus.WEBPKI_INVALID
    return FetchFailure(record_id, at, status, "connection refused", temporary)


def test_constants() -> None:
    assert FETCH_BACKOFF_SECONDS >= 300  # back off at least five minutes
    assert REFRESH_AFTER_SECONDS == 86_400


def test_cached_policy_validity_and_facts() -> None:
    assert CACHED.valid(T0)
    assert CACHED.valid(T0 + MAX_AGE - 0.001)
    assert not CACHED.valid(T0 + MAX_AGE)
    facts = CACHED.facts()
    assert facts == StsPolicyFacts(
        PolicyStatus.OK,
        POLICY,
        PolicySource.CACHE,
        fetched_at=T0,
        expires_at=T0 + MAX_AGE,
    )


NOT_FOUND = [RecordStatus.NONE, RecordStatus.INVALID, RecordStatus.MULTIPLE, RecordStatus.TEMPORARY]


@pytest.mark.parametrize(
    ("record", "cached", "failure", "now", "step", "fallback"),
    [
        # same id, valid: use the cached policy
        (found("old1"), CACHED, None, VALID, Step.USE_CACHED, CACHED),
        (found("old1"), CACHED, None, T0, Step.USE_CACHED, CACHED),
        # a new id: fetch, and fall back to the valid cached policy if that fails
        (found("new2"), CACHED, None, VALID, Step.FETCH, CACHED),
        # the id is opaque: a change of case is a new id
        (found("OLD1"), CACHED, None, VALID, Step.FETCH, CACHED),
        # nothing cached: fetch with nothing to fall back on
        (found("new2"), None, None, VALID, Step.FETCH, None),
        # an expired policy is never revived, not even by the same id
        (found("old1"), CACHED, None, EXPIRED, Step.FETCH, None),
        (found("old1"), CACHED, None, T0 + MAX_AGE, Step.FETCH, None),
        (found("new2"), CACHED, None, EXPIRED, Step.FETCH, None),
        # refresh about daily, keeping the cached policy as the fall-back
        (found("old1"), CACHED, None, T0 + REFRESH_AFTER_SECONDS - 1, Step.USE_CACHED, CACHED),
        (found("old1"), CACHED, None, T0 + REFRESH_AFTER_SECONDS, Step.FETCH, CACHED),
        (found("old1"), CACHED, None, STALE, Step.FETCH, CACHED),
        # back off after a failed fetch of the same id
        (found("new2"), CACHED, failed("new2", VALID), VALID + 1, Step.BACK_OFF, CACHED),
        (found("new2"), CACHED, failed("new2", VALID), VALID + 299, Step.BACK_OFF, CACHED),
        (found("new2"), None, failed("new2", VALID), VALID + 10, Step.BACK_OFF, None),
        (found("new2"), CACHED, failed("new2", EXPIRED), EXPIRED + 10, Step.BACK_OFF, None),
        (found("old1"), CACHED, failed("old1", STALE), STALE + 10, Step.BACK_OFF, CACHED),
        (found("new2"), CACHED, failed("new2", VALID), VALID + 300, Step.FETCH, CACHED),
        (found("new2"), None, failed("new2", VALID), VALID + 3600, Step.FETCH, None),
        # a failed refresh does not stop a fresh cached policy from being used
        (found("old1"), CACHED, failed("old1", VALID), VALID + 1, Step.USE_CACHED, CACHED),
    ],
    ids=[
        "same-id-valid",
        "same-id-just-fetched",
        "new-id-with-cache",
        "id-is-case-sensitive",
        "nothing-cached",
        "same-id-expired",
        "same-id-expires-now",
        "new-id-expired",
        "same-id-refresh-not-yet-due",
        "same-id-refresh-due",
        "same-id-stale",
        "back-off-just-failed",
        "back-off-299s",
        "back-off-no-cache",
        "back-off-expired-cache-no-fallback",
        "back-off-stale-refresh",
        "back-off-over-at-300s",
        "back-off-over-no-cache",
        "failure-does-not-evict-fresh",
    ],
)
def test_plan_with_a_record(
    record: StsRecordFacts,
    cached: CachedPolicy | None,
    failure: FetchFailure | None,
    now: float,
    step: Step,
    fallback: CachedPolicy | None,
) -> None:
    planned = stscache.plan(record, cached, failure, now)
    assert planned.step is step
    assert planned.fallback is fallback


@pytest.mark.parametrize("status", NOT_FOUND, ids=[s.value for s in NOT_FOUND])
def test_txt_gone_broken_or_unreachable_keeps_a_valid_cache(status: RecordStatus) -> None:
    planned = stscache.plan(StsRecordFacts(status), CACHED, None, VALID)
    assert planned.step is Step.USE_CACHED
    assert planned.fallback is CACHED
    assert status.value in planned.note  # and says so


@pytest.mark.parametrize("status", NOT_FOUND, ids=[s.value for s in NOT_FOUND])
def test_txt_gone_broken_or_unreachable_without_cache_is_no_policy(status: RecordStatus) -> None:
    assert stscache.plan(StsRecordFacts(status), None, None, VALID).step is Step.NO_POLICY
    # an expired cache is the same as none
    planned = stscache.plan(StsRecordFacts(status), CACHED, None, EXPIRED)
    assert planned.step is Step.NO_POLICY
    assert planned.fallback is None


def test_txt_gone_keeps_cache_even_while_backing_off() -> None:
    failure = failed("new2", VALID)
    planned = stscache.plan(StsRecordFacts(RecordStatus.TEMPORARY), CACHED, failure, VALID + 1)
    assert (planned.step, planned.fallback) == (Step.USE_CACHED, CACHED)


def test_backoff_and_refresh_are_parameters() -> None:
    failure = failed("new2", VALID)
    assert stscache.plan(found("new2"), None, failure, VALID + 10, backoff=5).step is Step.FETCH
    assert stscache.plan(found("new2"), None, failure, VALID + 10, backoff=60).step is Step.BACK_OFF
    planned = stscache.plan(found("old1"), CACHED, None, VALID, refresh_after=60)
    assert planned.step is Step.FETCH
    assert planned.fallback is CACHED


# --- after_fetch_failure ---------------------------------------------------------------------


def test_after_fetch_failure_falls_back_to_the_cached_policy() -> None:
    planned = stscache.plan(found("new2"), CACHED, None, VALID)
    facts = stscache.after_fetch_failure(planned, failed("new2", VALID))
    assert facts.status is PolicyStatus.OK
    assert facts.policy == POLICY
    assert facts.source is PolicySource.CACHE
    assert (facts.fetched_at, facts.expires_at) == (T0, T0 + MAX_AGE)
    assert "connection refused" in facts.error


@pytest.mark.parametrize(
    ("failure", "status", "temporary"),
    [
        (failed("new2", VALID, temporary=True), PolicyStatus.FETCH_ERROR, True),
        (failed("new2", VALID, temporary=False), PolicyStatus.WEBPKI_INVALID, False),
        (
            FetchFailure("new2", VALID, PolicyStatus.INVALID, "bad max_age", False),
            PolicyStatus.INVALID,
            False,
        ),
    ],
    ids=["temporary-fetch-error", "webpki", "invalid-policy"],
)
def test_after_fetch_failure_without_fallback_reports_the_failure(
    failure: FetchFailure, status: PolicyStatus, temporary: bool
) -> None:
    facts = stscache.after_fetch_failure(Plan(Step.FETCH), failure)
    assert facts.status is status
    assert facts.policy is None
    assert facts.temporary is temporary
    assert facts.error == failure.error


def test_expired_cache_and_failed_fetch_is_the_failure() -> None:
    planned = stscache.plan(found("old1"), CACHED, None, EXPIRED)
    facts = stscache.after_fetch_failure(planned, failed("old1", EXPIRED))
    assert facts.status is PolicyStatus.FETCH_ERROR
    assert facts.policy is None


def test_back_off_without_cache_reports_the_remembered_failure() -> None:
    failure = failed("new2", VALID, temporary=False)
    planned = stscache.plan(found("new2"), None, failure, VALID + 1)
    assert planned.step is Step.BACK_OFF
    facts = stscache.after_fetch_failure(planned, failure)
    assert (facts.status, facts.temporary) == (PolicyStatus.WEBPKI_INVALID, False)
