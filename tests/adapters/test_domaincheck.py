"""gateway.posture.domaincheck.DomainChecker end to end through the adapters: the in-process
DNS server, the real DnsResolver, a PolicyFetcher over MockTransport and a real PolicyDb on
disk. The clock is injected, so cache ages and back-off are exact."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from gateway.config.settings import MtaStsSettings
from gateway.core.model import (
    DaneFacts,
    DaneHostStatus,
    MxStatus,
    PolicySource,
    PolicyStatus,
    RecordStatus,
    StsMode,
    TlsaRecord,
)
from gateway.posture.domaincheck import DomainChecker
from gateway.posture.fetchlock import FetchLocks, FileLocks
from gateway.posture.stsfetch import PolicyFetcher
from gateway.store.policycache import PolicyDb
from gateway.store.postgres.database import Database
from gateway.store.postgres.locks import AdvisoryLocks
from gateway.store.postgres.policycache import PgPolicyCache
from gateway.store.protocols import PolicyCache
from support.dnsserver import DnsServer
from support.fakes import FakeClock, RecordingHandler
from support.resolvers import resolver_for

DIGEST = "c" * 64
ENFORCE = "version: STSv1\nmode: enforce\nmx: mx.good.test\nmax_age: 86400\n"
TESTING = "version: STSv1\nmode: testing\nmx: *.good.test\nmax_age: 86400\n"

ZONE: dict[tuple[str, str], list[str]] = {
    ("good.test", "MX"): ["10 mx.good.test."],
    ("mx.good.test", "A"): ["192.0.2.25"],
    ("_25._tcp.mx.good.test", "TLSA"): [f"3 1 1 {DIGEST}"],
    ("_mta-sts.good.test", "TXT"): ['"v=STSv1; " "id=first;"'],
    ("mta-sts.good.test", "A"): ["192.0.2.80"],
    ("_smtp._tls.good.test", "TXT"): ["v=TLSRPTv1; rua=mailto:tlsrpt@good.test"],
}
SECURE = {"good.test", "mx.good.test", "_25._tcp.mx.good.test"}


Served = str | Callable[[], httpx.Response]


def status(code: int) -> Callable[[], httpx.Response]:
    return lambda: httpx.Response(code)


class PolicyHosts:
    """Every policy host behind MockTransport: ``policies[domain]`` is the text to serve, or a
    function making the response to send instead (an error page, say)."""

    def __init__(self) -> None:
        self.policies: dict[str, Served] = {"good.test": ENFORCE}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        domain = request.headers["Host"].removeprefix("mta-sts.")
        policy = self.policies.get(domain)
        if policy is None:
            return httpx.Response(404)
        if callable(policy):
            return policy()
        return httpx.Response(200, headers={"Content-Type": "text/plain"}, content=policy.encode())


class World:
    """The DNS server, the policy hosts, the clock and the cache file one test shares; each
    ``checker()`` is a fresh gateway process on top of them."""

    def __init__(
        self, server: DnsServer, client: httpx.AsyncClient, db_path: Path, dsn: str = ""
    ) -> None:
        self.server = server
        self.client = client
        self.db_path = db_path
        self.dsn = dsn  # the shared database of the nodes; "" for the SQLite file
        self.clock = FakeClock()
        self.dbs: list[PolicyCache] = []
        self.pools: list[Database] = []

    def checker(
        self,
        *,
        trust_ad: bool = True,
        cache: PolicyCache | None = None,
        locks: FetchLocks | None = None,
    ) -> DomainChecker:
        """A new DomainChecker with a new resolver and a new PolicyDb on the same file, as after
        a restart."""
        resolver = resolver_for(self.server, trust_ad=trust_ad, timeout=1.0)
        # 192.0.2.80 is not a global address: the SSRF guard has its own tests in test_stsfetch.
        settings = MtaStsSettings(allow_private_addresses=True, fetch_timeout=2)
        fetcher = PolicyFetcher(resolver, settings, self.client)
        if cache is None:
            cache = PolicyDb(self.db_path)
            self.dbs.append(cache)
        return DomainChecker(resolver, fetcher, cache, clock=self.clock, locks=locks)

    async def node(self) -> DomainChecker:
        """Another node (or worker process) after a restart: a new resolver, a new cache (on
        PostgreSQL a pool of its own) and the fetch locks the nodes share (advisory locks on
        PostgreSQL, flock files on SQLite)."""
        if not self.dsn:
            folder = self.db_path.parent / "locks"
            folder.mkdir(parents=True, exist_ok=True)
            return self.checker(locks=FileLocks(folder))
        cache = PgPolicyCache(Database(self.dsn, pool_size=4, name="policy-cache"))
        await cache.open()
        self.dbs.append(cache)
        locks = Database(self.dsn, pool_size=2, name="fetch-locks")
        await locks.open()
        self.pools.append(locks)
        return self.checker(cache=cache, locks=AdvisoryLocks(locks))


@pytest.fixture
def policy_hosts() -> PolicyHosts:
    return PolicyHosts()


@pytest.fixture
def handler(policy_hosts: PolicyHosts) -> RecordingHandler:
    return RecordingHandler(policy_hosts)


@contextlib.asynccontextmanager
async def opened_world(tmp_path: Path, handler: RecordingHandler, dsn: str) -> AsyncIterator[World]:
    async with (
        DnsServer(ZONE, secure=SECURE) as server,
        httpx.AsyncClient(transport=httpx.MockTransport(handler), follow_redirects=False) as client,
    ):
        built = World(server, client, tmp_path / "data" / "sts.sqlite", dsn)
        try:
            yield built
        finally:
            for db in built.dbs:
                await db.close()
            for pool in built.pools:
                await pool.close()


@pytest.fixture
async def world(tmp_path: Path, handler: RecordingHandler) -> AsyncIterator[World]:
    async with opened_world(tmp_path, handler, "") as built:
        yield built


@pytest.fixture
async def either_world(
    tmp_path: Path, handler: RecordingHandler, either_dsn: str
) -> AsyncIterator[World]:
    """The world with its cache on either backend: nodes come from ``node()``."""
    async with opened_world(tmp_path, handler, either_dsn) as built:
        yield built


def set_sts_id(world: World, record_id: str) -> None:
    world.server.records[("_mta-sts.good.test", "TXT")] = [f"v=STSv1; id={record_id};"]


# --- a secure domain --------------------------------------------------------------------------


async def test_facts_for_a_secure_domain(world: World, handler: RecordingHandler) -> None:
    facts = await world.checker().facts("good.test")
    assert facts.domain == "good.test"
    assert facts.mx.status is MxStatus.FOUND
    assert facts.mx.hosts == ("mx.good.test",)
    assert facts.mx.dnssec is True
    assert facts.sts_record.status is RecordStatus.FOUND
    assert facts.sts_record.id == "first"  # the two TXT strings were joined
    policy = facts.sts_policy
    assert policy.status is PolicyStatus.OK
    assert policy.source is PolicySource.FETCHED
    assert policy.policy is not None
    assert policy.policy.mode is StsMode.ENFORCE
    assert policy.policy.mx == ("mx.good.test",)
    assert policy.fetched_at == world.clock.now
    assert policy.expires_at == world.clock.now + 86400
    assert facts.tls_rpt.status is RecordStatus.FOUND
    assert facts.tls_rpt.rua == ("mailto:tlsrpt@good.test",)
    assert facts.dane.resolver_trusted is True
    host = facts.dane_host("mx.good.test")
    assert host is not None
    assert host.status is DaneHostStatus.USABLE
    assert host.tlsa == (TlsaRecord(3, 1, 1, bytes.fromhex(DIGEST)),)
    assert {"mx", "mta_sts", "tls_rpt", "dane", "total"} <= set(facts.timings_ms)
    # the policy was fetched from the policy host, by address, once
    (request,) = handler.requests
    assert request.headers["Host"] == "mta-sts.good.test"
    assert request.url.host == "192.0.2.80"


# --- the policy cache -------------------------------------------------------------------------


async def test_cached_policy_survives_a_restart(
    either_world: World, handler: RecordingHandler
) -> None:
    world = either_world
    first = await world.node()
    await first.facts("good.test")
    assert first.policy_fetches == 1
    await world.dbs[-1].close()
    world.clock.advance(3600)

    second = await world.node()  # new resolver, new cache on the same file or database
    facts = await second.facts("good.test")
    assert facts.sts_policy.status is PolicyStatus.OK
    assert facts.sts_policy.source is PolicySource.CACHE
    assert facts.sts_policy.policy is not None
    assert facts.sts_policy.policy.mode is StsMode.ENFORCE
    assert second.policy_fetches == 0
    assert handler.calls == 1


async def test_a_new_id_fetches_and_replaces_the_policy(
    either_world: World, policy_hosts: PolicyHosts
) -> None:
    world = either_world
    checker = await world.node()
    await checker.facts("good.test")
    set_sts_id(world, "second")
    policy_hosts.policies["good.test"] = TESTING
    world.clock.advance(60)

    facts = await checker.facts("good.test")
    assert checker.policy_fetches == 2
    assert facts.sts_policy.source is PolicySource.FETCHED
    assert facts.sts_policy.policy is not None
    assert facts.sts_policy.policy.mode is StsMode.TESTING

    later = await (await world.node()).facts("good.test")  # and the cache holds the new one
    assert later.sts_policy.source is PolicySource.CACHE
    assert later.sts_policy.policy is not None
    assert later.sts_policy.policy.mode is StsMode.TESTING


@pytest.mark.parametrize(
    "failure",
    [
        status(500),
        status(404),
        lambda: httpx.Response(200, headers={"Content-Type": "text/html"}, content=b"<p>hi</p>"),
        "version: STSv1\nmode: enforce\n",  # not a valid policy (no mx, no max_age)
    ],
    ids=["500", "404", "html", "invalid-policy"],
)
async def test_a_failed_refetch_keeps_the_valid_cached_policy(
    world: World, policy_hosts: PolicyHosts, failure: Served
) -> None:
    checker = world.checker()
    await checker.facts("good.test")
    set_sts_id(world, "second")
    policy_hosts.policies["good.test"] = failure
    world.clock.advance(3600)

    facts = await checker.facts("good.test")
    assert checker.policy_fetches == 2
    assert facts.sts_policy.status is PolicyStatus.OK
    assert facts.sts_policy.source is PolicySource.CACHE
    assert facts.sts_policy.policy is not None
    assert facts.sts_policy.policy.mode is StsMode.ENFORCE
    assert "fetch failed" in facts.sts_policy.error


@pytest.mark.parametrize("new_id", [False, True], ids=["same-id", "new-id"])
async def test_an_expired_policy_is_not_used_when_the_fetch_fails(
    world: World, policy_hosts: PolicyHosts, new_id: bool
) -> None:
    checker = world.checker()
    await checker.facts("good.test")
    if new_id:
        set_sts_id(world, "second")
    policy_hosts.policies["good.test"] = status(503)
    world.clock.advance(86400 + 1)  # max_age is over

    facts = await checker.facts("good.test")
    assert checker.policy_fetches == 2
    assert facts.sts_policy.status is PolicyStatus.FETCH_ERROR
    assert facts.sts_policy.policy is None
    assert facts.sts_policy.temporary is True
    assert facts.sts_policy.source is PolicySource.NONE


@pytest.mark.parametrize(
    ("change", "record_status"),
    [
        ("remove", RecordStatus.NONE),
        ("servfail", RecordStatus.TEMPORARY),
        ("garble", RecordStatus.INVALID),
        ("duplicate", RecordStatus.MULTIPLE),
    ],
)
async def test_txt_record_gone_or_broken_uses_the_valid_cached_policy(
    world: World, change: str, record_status: RecordStatus
) -> None:
    checker = world.checker()
    await checker.facts("good.test")
    key = ("_mta-sts.good.test", "TXT")
    if change == "remove":
        del world.server.records[key]
    elif change == "servfail":
        world.server.servfail.add("_mta-sts.good.test")
    elif change == "garble":
        world.server.records[key] = ["v=STSv1; id=no spaces allowed;"]
    else:
        world.server.records[key] = ["v=STSv1; id=a;", "v=STSv1; id=b;"]
    world.clock.advance(3600)

    facts = await checker.facts("good.test")
    assert facts.sts_record.status is record_status
    assert facts.sts_policy.status is PolicyStatus.OK
    assert facts.sts_policy.source is PolicySource.CACHE
    assert checker.policy_fetches == 1

    world.clock.advance(86400)  # once it has expired, there is no policy at all
    expired = await checker.facts("good.test")
    assert expired.sts_policy.status is PolicyStatus.NOT_FETCHED
    assert expired.sts_policy.policy is None
    assert checker.policy_fetches == 1


async def test_no_record_no_fetch(world: World, handler: RecordingHandler) -> None:
    del world.server.records[("_mta-sts.good.test", "TXT")]
    checker = world.checker()
    facts = await checker.facts("good.test")
    assert facts.sts_record.status is RecordStatus.NONE
    assert facts.sts_policy.status is PolicyStatus.NOT_FETCHED
    assert checker.policy_fetches == 0
    assert handler.calls == 0


async def test_a_failed_fetch_is_not_retried_for_five_minutes(
    world: World, policy_hosts: PolicyHosts, handler: RecordingHandler
) -> None:
    policy_hosts.policies["good.test"] = status(500)
    checker = world.checker()
    first = await checker.facts("good.test")
    assert first.sts_policy.status is PolicyStatus.FETCH_ERROR
    assert handler.calls == 1

    policy_hosts.policies["good.test"] = ENFORCE  # fixed, but we are backing off
    world.clock.advance(299)
    during = await checker.facts("good.test")
    assert during.sts_policy.status is PolicyStatus.FETCH_ERROR
    assert during.sts_policy.temporary is True
    assert checker.policy_fetches == 1
    assert handler.calls == 1

    restarted = await world.checker().facts("good.test")  # the back-off is on disk too
    assert restarted.sts_policy.status is PolicyStatus.FETCH_ERROR
    assert handler.calls == 1

    world.clock.advance(2)  # 301 s after the failure
    after = await checker.facts("good.test")
    assert after.sts_policy.status is PolicyStatus.OK
    assert after.sts_policy.source is PolicySource.FETCHED
    assert checker.policy_fetches == 2
    assert handler.calls == 2


async def test_a_new_id_ends_the_back_off(
    world: World, policy_hosts: PolicyHosts, handler: RecordingHandler
) -> None:
    policy_hosts.policies["good.test"] = status(500)
    checker = world.checker()
    await checker.facts("good.test")
    policy_hosts.policies["good.test"] = ENFORCE
    set_sts_id(world, "second")
    world.clock.advance(10)
    facts = await checker.facts("good.test")
    assert facts.sts_policy.status is PolicyStatus.OK
    assert handler.calls == 2


async def test_a_day_old_policy_is_refreshed(
    world: World, policy_hosts: PolicyHosts, handler: RecordingHandler
) -> None:
    policy_hosts.policies["good.test"] = ENFORCE.replace("86400", "604800")
    checker = world.checker()
    await checker.facts("good.test")
    world.clock.advance(86400 + 1)
    facts = await checker.facts("good.test")
    assert facts.sts_policy.source is PolicySource.FETCHED
    assert handler.calls == 2


# --- single flight ----------------------------------------------------------------------------


async def test_concurrent_checks_of_one_domain_share_one_run(
    world: World, handler: RecordingHandler
) -> None:
    world.server.delay = 0.05
    checker = world.checker()
    results = await asyncio.gather(*(checker.facts("good.test") for _ in range(10)))
    assert checker.policy_fetches == 1
    assert handler.calls == 1
    assert world.server.count("good.test", "MX") == 1
    assert world.server.count("_mta-sts.good.test", "TXT") == 1
    assert all(r == results[0] for r in results)


# --- DANE -------------------------------------------------------------------------------------


async def test_dane_usable_when_everything_is_secure(world: World) -> None:
    facts = await world.checker().facts("good.test")
    assert facts.dane.resolver_trusted is True
    assert [(h.host, h.status) for h in facts.dane.hosts] == [
        ("mx.good.test", DaneHostStatus.USABLE)
    ]


async def test_no_tlsa_query_when_the_mx_answer_is_not_secure(world: World) -> None:
    world.server.secure.discard("good.test")
    facts = await world.checker().facts("good.test")
    assert facts.mx.dnssec is False
    assert facts.dane == DaneFacts(resolver_trusted=True)
    assert [q for q in world.server.log if q.rdtype == "TLSA"] == []
    assert world.server.count("mx.good.test", "A") == 0


async def test_untrusted_resolver_means_dane_is_unavailable(world: World) -> None:
    facts = await world.checker(trust_ad=False).facts("good.test")
    assert facts.dane == DaneFacts(resolver_trusted=False)
    assert facts.mx.dnssec is False
    assert [q for q in world.server.log if q.rdtype == "TLSA"] == []


DANE_CASES = [
    # (id, change to the zone, expected status of mx.good.test)
    ("tlsa-servfail", {"servfail": ("_25._tcp.mx.good.test", "TLSA")}, DaneHostStatus.TEMPORARY),
    ("tlsa-timeout", {"drop": ("_25._tcp.mx.good.test", "TLSA")}, DaneHostStatus.TEMPORARY),
    ("address-servfail", {"servfail": ("mx.good.test", "AAAA")}, DaneHostStatus.TEMPORARY),
    ("address-insecure", {"insecure": "mx.good.test"}, DaneHostStatus.INSECURE),
    ("tlsa-insecure", {"insecure": "_25._tcp.mx.good.test"}, DaneHostStatus.INSECURE),
    ("no-tlsa", {"tlsa": []}, DaneHostStatus.NONE),
    ("pkix-only", {"tlsa": [f"1 1 1 {DIGEST}"]}, DaneHostStatus.UNUSABLE),
    ("ta-and-pkix", {"tlsa": [f"0 0 1 {DIGEST}", f"2 0 1 {DIGEST}"]}, DaneHostStatus.USABLE),
]


@pytest.mark.parametrize(
    ("change", "status"), [c[1:] for c in DANE_CASES], ids=[c[0] for c in DANE_CASES]
)
async def test_dane_host_status(
    world: World, change: dict[str, object], status: DaneHostStatus
) -> None:
    server = world.server
    if "servfail" in change:
        server.servfail.add(change["servfail"])  # type: ignore[arg-type]
    if "drop" in change:
        server.drop.add(change["drop"])  # type: ignore[arg-type]
    if "insecure" in change:
        server.secure.discard(change["insecure"])
    if "tlsa" in change:
        tlsa = change["tlsa"]
        if tlsa:
            server.records[("_25._tcp.mx.good.test", "TLSA")] = tlsa  # type: ignore[assignment]
        else:
            del server.records[("_25._tcp.mx.good.test", "TLSA")]
    facts = await world.checker().facts("good.test")
    host = facts.dane_host("mx.good.test")
    assert host is not None
    assert host.status is status
    if status is DaneHostStatus.TEMPORARY:
        assert host.error


BAD_DIGEST = "\\# 5 030101abcd"  # DANE-EE SPKI SHA-256 with a 2-byte "digest"


@pytest.mark.parametrize(
    ("tlsa", "status"),
    [
        ([BAD_DIGEST], DaneHostStatus.UNUSABLE),
        ([BAD_DIGEST, f"3 1 1 {DIGEST}"], DaneHostStatus.USABLE),
    ],
    ids=["bad-digest-only", "bad-beside-good"],
)
async def test_dane_tlsa_with_a_malformed_digest(
    world: World, tlsa: list[str], status: DaneHostStatus
) -> None:
    world.server.records[("_25._tcp.mx.good.test", "TLSA")] = tlsa
    facts = await world.checker().facts("good.test")
    host = facts.dane_host("mx.good.test")
    assert host is not None
    assert host.status is status


async def test_dane_for_an_implicit_mx_checks_the_domain_itself(world: World) -> None:
    server = world.server
    del server.records[("good.test", "MX")]
    server.records[("good.test", "A")] = ["192.0.2.26"]
    server.records[("_25._tcp.good.test", "TLSA")] = [f"3 1 1 {DIGEST}"]
    server.secure |= {"_25._tcp.good.test"}
    facts = await world.checker().facts("good.test")
    assert facts.mx.status is MxStatus.IMPLICIT
    assert [(h.host, h.status) for h in facts.dane.hosts] == [("good.test", DaneHostStatus.USABLE)]


# --- MX outcomes through the wire -------------------------------------------------------------


@pytest.mark.parametrize(
    ("records", "servfail", "status", "hosts"),
    [
        (
            ["10 mx.good.test.", "20 MX.good.test.", "5 mx0.good.test."],
            False,
            MxStatus.FOUND,
            ("mx0.good.test", "mx.good.test"),
        ),
        (["0 ."], False, MxStatus.NULL, ()),
        (["0 .", "10 mx.good.test."], False, MxStatus.FOUND, ("mx.good.test",)),
        (None, False, MxStatus.IMPLICIT, ()),
        ([], True, MxStatus.TEMPORARY, ()),
    ],
    ids=["found", "null", "null-beside-real", "implicit", "servfail"],
)
async def test_mx_outcomes(
    world: World,
    records: list[str] | None,
    servfail: bool,
    status: MxStatus,
    hosts: tuple[str, ...],
) -> None:
    if records is None:
        del world.server.records[("good.test", "MX")]
    elif records:
        world.server.records[("good.test", "MX")] = records
    if servfail:
        world.server.servfail.add(("good.test", "MX"))
    facts = await world.checker().facts("good.test")
    assert facts.mx.status is status
    assert facts.mx.hosts == hosts


async def test_an_unknown_domain_is_nxdomain(world: World, handler: RecordingHandler) -> None:
    facts = await world.checker().facts("absent.test")
    assert facts.mx.status is MxStatus.NXDOMAIN
    assert facts.sts_record.status is RecordStatus.NONE
    assert facts.tls_rpt.status is RecordStatus.NONE
    assert handler.calls == 0


async def test_a_policy_host_sending_garbage_is_a_fetch_error(
    world: World, policy_hosts: PolicyHosts
) -> None:
    policy_hosts.policies["good.test"] = lambda: httpx.Response(
        200,
        headers={"Content-Type": "text/plain", "Content-Encoding": "gzip"},
        stream=httpx.ByteStream(b"not gzip at all"),
    )
    facts = await world.checker().facts("good.test")
    assert facts.sts_policy.status is PolicyStatus.FETCH_ERROR


# --- several worker processes ------------------------------------------------------------------


class Asking:
    """A node's fetch locks, telling the test when the node asks for one."""

    def __init__(self, inner: FetchLocks | None) -> None:
        assert inner is not None
        self.inner = inner
        self.asked = asyncio.Event()

    def locked(self, name: str, patience: float) -> contextlib.AbstractAsyncContextManager[None]:
        self.asked.set()
        return self.inner.locked(name, patience)


async def test_nodes_sharing_the_fetch_locks_fetch_each_policy_once(
    either_world: World, handler: RecordingHandler, policy_hosts: PolicyHosts
) -> None:
    """Two checkers stand for two worker processes on one cache file (flock locks conflict
    between separate opens, in one process as in two) or two nodes on one database (each with
    pools of its own: its own sessions, so its own advisory locks). The second asks for the
    lock while the first is still fetching, and then takes the policy from the cache."""
    world = either_world
    fetching, release = asyncio.Event(), asyncio.Event()

    async def held(request: httpx.Request) -> httpx.Response:
        fetching.set()
        await release.wait()
        return policy_hosts(request)

    handler.reply = held
    first, second = await world.node(), await world.node()
    second._locks = asking = Asking(second._locks)
    fetched = asyncio.create_task(first.facts("good.test"))
    await fetching.wait()  # the first holds the lock and fetches
    cached = asyncio.create_task(second.facts("good.test"))
    await asking.asked.wait()  # the second found nothing cached and wants to fetch too
    release.set()
    facts = [await fetched, await cached]
    assert [f.sts_policy.status for f in facts] == [PolicyStatus.OK, PolicyStatus.OK]
    assert [f.sts_policy.source for f in facts] == [PolicySource.FETCHED, PolicySource.CACHE]
    assert (first.policy_fetches, second.policy_fetches) == (1, 0)
    assert handler.calls == 1


async def test_the_policy_host_is_resolved_once_and_only_for_a_fetch(
    world: World, handler: RecordingHandler
) -> None:
    # Its lookup starts as soon as the cache says to fetch, before the fetch lock is taken:
    # the fetch then uses that answer instead of asking again.
    checker = await world.node()
    first = await checker.facts("good.test")
    assert first.sts_policy.source is PolicySource.FETCHED
    assert world.server.count("mta-sts.good.test", "A") == 1
    assert world.server.count("mta-sts.good.test", "AAAA") == 1
    world.server.reset_counts()
    again = await checker.facts("good.test")  # cached: nothing to fetch, no host to resolve
    assert again.sts_policy.source is PolicySource.CACHE
    assert world.server.count("mta-sts.good.test", "A") == 0
    assert world.server.count("mta-sts.good.test", "AAAA") == 0
    assert handler.calls == 1
