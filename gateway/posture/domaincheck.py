"""Gather a recipient domain's transport facts: MX, MTA-STS record and policy, TLS-RPT and DANE.

The lookups run concurrently (DANE's TLSA lookups start as soon as the MX answer is in), each
is timed, and concurrent checks of the same domain share one run (single flight). The result is
a ``DomainFacts`` for ``core.policy.decide_domain``, kept for a few seconds by ``FactsMemo``
when it holds nothing temporary.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from gateway import metrics
from gateway.core import dane, mtasts, stscache, tlsrpt
from gateway.core.model import (
    DaneFacts,
    DaneHostFacts,
    DaneHostStatus,
    DnsAnswer,
    DnsStatus,
    DomainFacts,
    MxFacts,
    MxRecord,
    MxStatus,
    PolicySource,
    PolicyStatus,
    Reason,
    RecordStatus,
    StsPolicyFacts,
    StsRecordFacts,
    TlsaRecord,
    TlsRptFacts,
)
from gateway.errors import PolicyFetchError
from gateway.posture.dns import Resolver
from gateway.posture.factsmemo import FactsMemo
from gateway.posture.fetchlock import FetchLocks, LockTimeout
from gateway.posture.stsfetch import PolicyFetcher
from gateway.store.protocols import PolicyCache

T = TypeVar("T")
Clock = Callable[[], float]


class DomainChecker:
    def __init__(
        self,
        resolver: Resolver,
        fetcher: PolicyFetcher,
        cache: PolicyCache,
        clock: Clock = time.time,
        locks: FetchLocks | None = None,
        lock_timeout: float = 30.0,
        memo_seconds: float = 0.0,
    ) -> None:
        self._resolver = resolver
        self._fetcher = fetcher
        self._cache = cache
        self._clock = clock
        # With several worker processes or nodes: one policy fetch per domain among them.
        self._locks = locks
        self._lock_timeout = lock_timeout
        self._inflight: dict[str, asyncio.Future[DomainFacts]] = {}
        self._memo = FactsMemo(memo_seconds)
        self.policy_fetches = 0

    @property
    def resolver(self) -> Resolver:
        """The one resolver the facts came from; direct delivery and the active probe resolve
        MX hosts with it."""
        return self._resolver

    @property
    def memo_seconds(self) -> float:
        """How long a domain's facts are reused ([dns] facts_cache_seconds); 0: never."""
        return self._memo.seconds

    def forget(self) -> None:
        """Check every domain afresh from now on (the allowlist was reloaded: an operator who
        changed it expects what follows to reflect the domains as they are now)."""
        self._memo.clear()

    def known(self, domain: str) -> DomainFacts | None:
        """The domain's facts if the memo still has them (no DNS, nothing to wait for), else
        None; ``domain`` canonical, as for ``facts``."""
        return self._memo.get(domain, self._clock()) if self._memo.enabled else None

    async def facts(self, domain: str) -> DomainFacts:
        """``domain`` must be canonical (``core.addresses.normalise_domain``)."""
        kept = self.known(domain)
        if kept is not None:
            return kept
        future = self._inflight.get(domain)
        if future is None:
            future = asyncio.ensure_future(self._gather(domain))
            self._inflight[domain] = future
            future.add_done_callback(lambda _: self._inflight.pop(domain, None))
        return await asyncio.shield(future)

    async def _gather(self, domain: str) -> DomainFacts:
        generation = self._memo.generation
        seen = _Answers(self._resolver, self._clock)
        timings: dict[str, float] = {}
        started = time.perf_counter()
        async with asyncio.TaskGroup() as group:
            mx_task = group.create_task(_timed(timings, "mx", self._mx(seen, domain)))
            sts_task = group.create_task(_timed(timings, "mta_sts", self._sts(seen, domain)))
            rpt_task = group.create_task(_timed(timings, "tls_rpt", self._tls_rpt(seen, domain)))
            dane = self._dane(seen, domain, mx_task)
            dane_task = group.create_task(_timed(timings, "dane", dane))
        timings["total"] = _ms(started)
        metrics.POSTURE_SECONDS.observe(timings["total"] / 1000)
        record, policy = sts_task.result()
        facts = DomainFacts(
            domain=domain,
            mx=mx_task.result(),
            sts_record=record,
            sts_policy=policy,
            tls_rpt=rpt_task.result(),
            dane=dane_task.result(),
            timings_ms=timings,
        )
        if not seen.temporary:
            self._memo.put(domain, facts, self._clock(), seen.until, generation)
        return facts

    # --- MX ----------------------------------------------------------------------------------

    async def _mx(self, seen: _Answers, domain: str) -> MxFacts:
        answer = await seen.mx(domain)
        return mx_facts(answer)

    # --- MTA-STS -----------------------------------------------------------------------------

    async def _sts(self, seen: _Answers, domain: str) -> tuple[StsRecordFacts, StsPolicyFacts]:
        answer = await seen.txt(f"_mta-sts.{domain}")
        record = sts_record_facts(answer)
        plan, failure = await self._plan(domain, record)
        if plan.step is not stscache.Step.FETCH:
            return record, await self._apply(seen, domain, record, plan, failure)
        # The policy host's addresses are needed only for a fetch: looked up now, they come in
        # while the lock and the second look at the cache are awaited, one DNS round trip off
        # the path of a domain seen for the first time.
        addresses = asyncio.ensure_future(self._fetcher.addresses(domain))
        try:
            if self._locks is not None:
                # One fetch per domain across all worker processes and nodes: whoever waited
                # for the lock finds the policy the holder fetched and uses it from the cache.
                try:
                    async with self._locks.locked(domain, self._lock_timeout):
                        plan, failure = await self._plan(domain, record)
                        policy = await self._apply(seen, domain, record, plan, failure, addresses)
                        return record, policy
                except LockTimeout:
                    pass  # the holder is stuck: fetch ourselves rather than fail the check
            return record, await self._apply(seen, domain, record, plan, failure, addresses)
        finally:
            addresses.cancel()  # not needed after all: another worker fetched the policy

    async def _plan(
        self, domain: str, record: StsRecordFacts
    ) -> tuple[stscache.Plan, stscache.FetchFailure | None]:
        cached, failure = await self._cache.entry(domain)
        return stscache.plan(record, cached, failure, self._clock()), failure

    async def _apply(
        self,
        seen: _Answers,
        domain: str,
        record: StsRecordFacts,
        plan: stscache.Plan,
        failure: stscache.FetchFailure | None,
        addresses: Awaitable[DnsAnswer[str]] | None = None,
    ) -> StsPolicyFacts:
        metrics.POLICY_CACHE.labels("fetch" if plan.step is stscache.Step.FETCH else "hit").inc()
        if plan.step is stscache.Step.USE_CACHED:
            assert plan.fallback is not None
            return plan.fallback.facts()
        if plan.step is stscache.Step.NO_POLICY:
            return StsPolicyFacts(PolicyStatus.NOT_FETCHED)
        if plan.step is stscache.Step.BACK_OFF:
            assert failure is not None
            # Even when a cached policy stands in, the next message must look again: the
            # back-off may end and the fetch succeed.
            seen.temporary = seen.temporary or failure.temporary
            return stscache.after_fetch_failure(plan, failure)
        facts, failure = await self._fetch(domain, record.id, plan, addresses)
        seen.temporary = seen.temporary or (failure is not None and failure.temporary)
        return facts

    async def _fetch(
        self,
        domain: str,
        record_id: str,
        plan: stscache.Plan,
        addresses: Awaitable[DnsAnswer[str]] | None,
    ) -> tuple[StsPolicyFacts, stscache.FetchFailure | None]:
        self.policy_fetches += 1
        try:
            text = await self._fetcher.fetch(domain, addresses)
            policy = mtasts.parse_policy(text)
        except PolicyFetchError as exc:
            failure = stscache.FetchFailure(
                record_id, self._clock(), exc.status, exc.detail, exc.temporary
            )
        except mtasts.StsError as exc:
            failure = stscache.FetchFailure(
                record_id, self._clock(), PolicyStatus.INVALID, exc.detail, temporary=False
            )
        else:
            now = self._clock()
            cached = stscache.CachedPolicy(
                domain, record_id, policy, text, now, now + policy.max_age
            )
            await self._cache.store_policy(cached)
            facts = StsPolicyFacts(
                PolicyStatus.OK,
                policy,
                PolicySource.FETCHED,
                fetched_at=cached.fetched_at,
                expires_at=cached.expires_at,
            )
            return facts, None
        await self._cache.store_failure(domain, failure)
        return stscache.after_fetch_failure(plan, failure), failure

    # --- TLS-RPT -----------------------------------------------------------------------------

    async def _tls_rpt(self, seen: _Answers, domain: str) -> TlsRptFacts:
        answer = await seen.txt(f"_smtp._tls.{domain}")
        return tls_rpt_facts(answer)

    # --- DANE --------------------------------------------------------------------------------

    async def _dane(self, seen: _Answers, domain: str, mx_task: Awaitable[MxFacts]) -> DaneFacts:
        mx = await mx_task
        trusted = self._resolver.trusted
        # RFC 7672 §2.2: DANE applies only when the MX RRset itself is DNSSEC-secure.
        if not trusted or not mx.dnssec or mx.status not in (MxStatus.FOUND, MxStatus.IMPLICIT):
            return DaneFacts(resolver_trusted=trusted)
        hosts = mx.hosts if mx.status is MxStatus.FOUND else (domain,)
        results = await asyncio.gather(*(self._dane_host(seen, host) for host in hosts))
        return DaneFacts(resolver_trusted=True, hosts=tuple(results))

    async def _dane_host(self, seen: _Answers, host: str) -> DaneHostFacts:
        addresses, tlsa = await asyncio.gather(
            seen.addresses(host), seen.tlsa(dane.tlsa_name(host))
        )
        return dane_host_facts(host, addresses, tlsa)


class _Answers:
    """The resolver, as one check sees it: notes when the first of the answers the facts are
    built from expires (its TTL counted from when it came) and whether any was a temporary
    failure (then the facts are not memoised)."""

    def __init__(self, resolver: Resolver, clock: Clock) -> None:
        self._resolver = resolver
        self._clock = clock
        self.until: float | None = None
        self.temporary = False

    def _note(self, answer: DnsAnswer[T]) -> DnsAnswer[T]:
        if answer.status is DnsStatus.TEMPORARY:
            self.temporary = True
        elif answer.ttl is not None:
            until = self._clock() + answer.ttl
            self.until = until if self.until is None else min(self.until, until)
        return answer

    async def mx(self, name: str) -> DnsAnswer[MxRecord]:
        return self._note(await self._resolver.mx(name))

    async def txt(self, name: str) -> DnsAnswer[str]:
        return self._note(await self._resolver.txt(name))

    async def addresses(self, name: str) -> DnsAnswer[str]:
        return self._note(await self._resolver.addresses(name))

    async def tlsa(self, name: str) -> DnsAnswer[TlsaRecord]:
        return self._note(await self._resolver.tlsa(name))


# --- Pure translations from DNS answers to facts ----------------------------------------------


def mx_facts(answer: DnsAnswer[MxRecord]) -> MxFacts:
    secure = answer.authenticated
    if answer.status is DnsStatus.TEMPORARY:
        return MxFacts(MxStatus.TEMPORARY, error=answer.error)
    if answer.status is DnsStatus.NXDOMAIN:
        return MxFacts(MxStatus.NXDOMAIN, dnssec=secure)
    if answer.status is DnsStatus.NODATA:
        return MxFacts(MxStatus.IMPLICIT, dnssec=secure)  # RFC 5321 §5.1
    hosts = [record.host for record in answer.records if record.host]
    if not hosts:
        return MxFacts(MxStatus.NULL, dnssec=secure)  # RFC 7505 §3
    # A null MX beside real ones is a misconfiguration; RFC 7505 §4.3 says to ignore it.
    unique = tuple(dict.fromkeys(hosts))
    return MxFacts(MxStatus.FOUND, unique, dnssec=secure)


def sts_record_facts(answer: DnsAnswer[str]) -> StsRecordFacts:
    if answer.status is DnsStatus.TEMPORARY:
        return StsRecordFacts(RecordStatus.TEMPORARY, error=answer.error)
    try:
        text = mtasts.select_record(answer.records)
        record = mtasts.parse_record(text)
    except mtasts.StsError as exc:
        status = {
            Reason.STS_NO_RECORD: RecordStatus.NONE,
            Reason.STS_MULTIPLE_RECORDS: RecordStatus.MULTIPLE,
        }.get(exc.reason, RecordStatus.INVALID)
        return StsRecordFacts(status, error=exc.detail)
    return StsRecordFacts(RecordStatus.FOUND, id=record.id)


def tls_rpt_facts(answer: DnsAnswer[str]) -> TlsRptFacts:
    if answer.status is DnsStatus.TEMPORARY:
        return TlsRptFacts(RecordStatus.TEMPORARY, error=answer.error)
    try:
        rua = tlsrpt.parse_record(tlsrpt.select_record(answer.records))
    except tlsrpt.TlsRptError as exc:
        status = RecordStatus.NONE if exc.missing else RecordStatus.INVALID
        return TlsRptFacts(status, error=exc.detail)
    return TlsRptFacts(RecordStatus.FOUND, rua)


def dane_host_facts(
    host: str, addresses: DnsAnswer[str], tlsa: DnsAnswer[TlsaRecord]
) -> DaneHostFacts:
    if addresses.status is DnsStatus.TEMPORARY:
        return DaneHostFacts(host, DaneHostStatus.TEMPORARY, error=addresses.error)
    if not addresses.authenticated:
        # RFC 7672 §2.2.2: TLSA records count only for hosts whose addresses are secure.
        return DaneHostFacts(host, DaneHostStatus.INSECURE)
    if tlsa.status is DnsStatus.TEMPORARY:
        return DaneHostFacts(host, DaneHostStatus.TEMPORARY, error=tlsa.error)
    if not tlsa.authenticated:
        return DaneHostFacts(host, DaneHostStatus.INSECURE)
    return DaneHostFacts(host, dane.host_status(tlsa.records), tlsa.records)


async def _timed(timings: dict[str, float], name: str, work: Awaitable[T]) -> T:
    started = time.perf_counter()
    try:
        return await work
    finally:
        timings[name] = _ms(started)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
