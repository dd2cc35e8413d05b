"""The memo of a domain's facts through the real adapters: the in-process DNS server, the real
DnsResolver (its TTLs from the wire), a PolicyFetcher over MockTransport and a real PolicyDb on
disk. The memo's clock is injected; the TTLs are the server's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from gateway.config.settings import MtaStsSettings
from gateway.core.model import MxStatus, PolicyStatus, RecordStatus
from gateway.core.stscache import CachedPolicy, FetchFailure
from gateway.posture.domaincheck import DomainChecker
from gateway.posture.stsfetch import PolicyFetcher
from gateway.store.policycache import PolicyDb
from support.dnsserver import DnsServer
from support.fakes import FakeClock, RecordingHandler
from support.resolvers import resolver_for

ENFORCE = "version: STSv1\nmode: enforce\nmx: mx.good.test\nmx: mx2.good.test\nmax_age: 86400\n"
ZONE: dict[tuple[str, str], list[str]] = {
    ("good.test", "MX"): ["10 mx.good.test."],
    ("mx.good.test", "A"): ["192.0.2.25"],
    ("mx2.good.test", "A"): ["192.0.2.26"],
    ("_mta-sts.good.test", "TXT"): ["v=STSv1; id=first;"],
    ("mta-sts.good.test", "A"): ["192.0.2.80"],
    ("_smtp._tls.good.test", "TXT"): ["v=TLSRPTv1; rua=mailto:tlsrpt@good.test"],
}


class CountingCache:
    """The real PolicyDb, its reads counted (each one a hop to the cache's own thread)."""

    def __init__(self, db: PolicyDb) -> None:
        self.db = db
        self.reads = 0

    async def policy(self, domain: str) -> CachedPolicy | None:
        self.reads += 1
        return await self.db.policy(domain)

    async def failure(self, domain: str) -> FetchFailure | None:
        self.reads += 1
        return await self.db.failure(domain)

    async def entry(self, domain: str) -> tuple[CachedPolicy | None, FetchFailure | None]:
        self.reads += 1
        return await self.db.entry(domain)

    async def store_policy(self, cached: CachedPolicy) -> None:
        await self.db.store_policy(cached)

    async def store_failure(self, domain: str, failure: FetchFailure) -> None:
        await self.db.store_failure(domain, failure)


class World:
    def __init__(self, server: DnsServer, client: httpx.AsyncClient, db: PolicyDb) -> None:
        self.server = server
        self.clock = FakeClock()
        self.cache = CountingCache(db)
        resolver = resolver_for(server, timeout=1.0)
        settings = MtaStsSettings(allow_private_addresses=True, fetch_timeout=2)
        fetcher = PolicyFetcher(resolver, settings, client)
        self.checker = DomainChecker(
            resolver,
            fetcher,
            self.cache,  # type: ignore[arg-type]
            clock=self.clock,
            memo_seconds=5.0,
        )


def serve_policy(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, headers={"Content-Type": "text/plain"}, content=ENFORCE.encode())


async def open_world(tmp_path: Path, ttl: int) -> AsyncIterator[World]:
    handler = RecordingHandler(serve_policy)
    async with (
        DnsServer(ZONE, secure=set(), ttl=ttl) as server,
        httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client,
    ):
        db = PolicyDb(tmp_path / "sts.sqlite")
        try:
            yield World(server, client, db)
        finally:
            await db.close()


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async for built in open_world(tmp_path, ttl=300):
        yield built


@pytest.fixture
async def short_ttl(tmp_path: Path) -> AsyncIterator[World]:
    async for built in open_world(tmp_path, ttl=2):
        yield built


async def test_a_second_message_costs_no_query_and_no_cache_read(world: World) -> None:
    first = await world.checker.facts("good.test")
    assert first.sts_policy.status is PolicyStatus.OK
    queries, reads = world.server.total, world.cache.reads
    world.clock.advance(4)
    assert await world.checker.facts("good.test") == first
    assert world.server.total == queries
    assert world.cache.reads == reads


async def test_after_the_window_every_lookup_is_made_again(world: World) -> None:
    await world.checker.facts("good.test")
    reads = world.cache.reads
    world.clock.advance(5)
    await world.checker.facts("good.test")
    for name, rdtype in (("good.test", "MX"), ("_mta-sts.good.test", "TXT")):
        assert world.server.count(name, rdtype) == 2
    assert world.server.count("_smtp._tls.good.test", "TXT") == 2
    assert world.cache.reads == 2 * reads  # the policy is read from the cache, not fetched


async def test_the_answers_ttl_ends_the_memo_before_the_window(short_ttl: World) -> None:
    world = short_ttl
    await world.checker.facts("good.test")
    queries = world.server.total
    world.clock.advance(1)
    await world.checker.facts("good.test")
    assert world.server.total == queries
    world.clock.advance(1)  # two seconds: the server's TTL, shorter than the five of the memo
    await world.checker.facts("good.test")
    assert world.server.count("good.test", "MX") == 2


async def test_a_record_change_is_seen_after_the_memo_expires(world: World) -> None:
    assert (await world.checker.facts("good.test")).mx.hosts == ("mx.good.test",)
    world.server.records[("good.test", "MX")] = ["10 mx2.good.test."]
    world.clock.advance(5)
    assert (await world.checker.facts("good.test")).mx.hosts == ("mx2.good.test",)


async def test_a_servfail_is_not_memoised(world: World) -> None:
    world.server.servfail.add(("_smtp._tls.good.test", "TXT"))
    facts = await world.checker.facts("good.test")
    assert facts.tls_rpt.status is RecordStatus.TEMPORARY
    asked = world.server.queries[("_smtp._tls.good.test", "TXT")]
    world.server.servfail.clear()  # the domain's DNS recovers: the very next message sees it
    facts = await world.checker.facts("good.test")
    assert facts.tls_rpt.status is RecordStatus.FOUND
    assert world.server.queries[("_smtp._tls.good.test", "TXT")] > asked
    assert facts.mx.status is MxStatus.FOUND
