"""The memo of a domain's facts ([dns] facts_cache_seconds), with a fake resolver, a fake policy
cache and a fake clock: what a second message to the same domain costs, and when it costs a
full check again."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from gateway.config import loader
from gateway.config.settings import Settings
from gateway.core.allowlist import Allowlist, AllowlistEntry
from gateway.core.model import (
    DnsAnswer,
    DnsStatus,
    MxRecord,
    PolicyStatus,
    Reason,
    TlsaRecord,
    Verdict,
)
from gateway.core.stscache import CachedPolicy, FetchFailure
from gateway.errors import PolicyFetchError
from gateway.posture.allowlists import InForce
from gateway.posture.assessment import Posture
from gateway.posture.domaincheck import DomainChecker
from gateway.posture.factsmemo import FactsMemo
from gateway.runtime import parts
from support.fakes import FakeClock

ENFORCE = "version: STSv1\nmode: enforce\nmx: mx.good.test\nmax_age: 86400\n"
TLSA = TlsaRecord(3, 1, 1, b"\xcc" * 32)


def found(*records: Any, ttl: float | None = 300.0) -> DnsAnswer[Any]:
    return DnsAnswer(DnsStatus.FOUND, tuple(records), authenticated=True, ttl=ttl)


TEMPORARY: DnsAnswer[Any] = DnsAnswer(DnsStatus.TEMPORARY, error="SERVFAIL")


class FakeResolver:
    """A table of answers by (name, type); every lookup counted."""

    trusted = True

    def __init__(self) -> None:
        self.table: dict[tuple[str, str], DnsAnswer[Any]] = {
            ("good.test", "MX"): found(MxRecord(10, "mx.good.test")),
            ("_mta-sts.good.test", "TXT"): found("v=STSv1; id=first;"),
            ("_smtp._tls.good.test", "TXT"): found("v=TLSRPTv1; rua=mailto:tlsrpt@good.test"),
            ("mx.good.test", "ADDR"): found("192.0.2.25"),
            ("_25._tcp.mx.good.test", "TLSA"): found(TLSA),
        }
        self.queries = 0

    def _answer(self, name: str, rdtype: str) -> DnsAnswer[Any]:
        self.queries += 1
        return self.table.get((name, rdtype), DnsAnswer(DnsStatus.NXDOMAIN, authenticated=True))

    async def mx(self, name: str) -> DnsAnswer[MxRecord]:
        return self._answer(name, "MX")

    async def txt(self, name: str) -> DnsAnswer[str]:
        return self._answer(name, "TXT")

    async def addresses(self, name: str) -> DnsAnswer[str]:
        return self._answer(name, "ADDR")

    async def tlsa(self, name: str) -> DnsAnswer[TlsaRecord]:
        return self._answer(name, "TLSA")


class FakeFetcher:
    """The policy hosts: ``policies[domain]`` is the text served, or the error raised."""

    def __init__(self) -> None:
        self.policies: dict[str, str | PolicyFetchError] = {"good.test": ENFORCE}
        self.fetches = 0

    async def addresses(self, domain: str) -> DnsAnswer[str]:
        return DnsAnswer(DnsStatus.FOUND, ("192.0.2.1",), authenticated=True)

    async def fetch(self, domain: str, addresses: Awaitable[DnsAnswer[str]] | None) -> str:
        if addresses is not None:
            await addresses
        self.fetches += 1
        policy = self.policies.get(domain, PolicyFetchError(PolicyStatus.FETCH_ERROR, "404"))
        if isinstance(policy, PolicyFetchError):
            raise policy
        return policy


class FakeCache:
    """The policy cache in memory, every read counted."""

    def __init__(self) -> None:
        self.policies: dict[str, CachedPolicy] = {}
        self.failures: dict[str, FetchFailure] = {}
        self.reads = 0

    async def policy(self, domain: str) -> CachedPolicy | None:
        self.reads += 1
        return self.policies.get(domain)

    async def failure(self, domain: str) -> FetchFailure | None:
        self.reads += 1
        return self.failures.get(domain)

    async def entry(self, domain: str) -> tuple[CachedPolicy | None, FetchFailure | None]:
        self.reads += 1
        return self.policies.get(domain), self.failures.get(domain)

    async def store_policy(self, cached: CachedPolicy) -> None:
        self.policies[cached.domain] = cached
        self.failures.pop(cached.domain, None)

    async def store_failure(self, domain: str, failure: FetchFailure) -> None:
        self.failures[domain] = failure


class World:
    def __init__(self, seconds: float = 5.0) -> None:
        self.clock = FakeClock()
        self.resolver = FakeResolver()
        self.fetcher = FakeFetcher()
        self.cache = FakeCache()
        self.checker = DomainChecker(
            self.resolver,  # type: ignore[arg-type]
            self.fetcher,  # type: ignore[arg-type]
            self.cache,  # type: ignore[arg-type]
            clock=self.clock,
            memo_seconds=seconds,
        )

    def costs(self) -> tuple[int, int]:
        return self.resolver.queries, self.cache.reads


@pytest.fixture
def world() -> World:
    return World()


async def test_a_second_message_within_the_window_costs_no_lookup(world: World) -> None:
    first = await world.checker.facts("good.test")
    spent = world.costs()
    assert spent[0] > 0
    assert spent[1] > 0
    world.clock.advance(4.9)
    second = await world.checker.facts("good.test")
    assert second == first
    assert world.costs() == spent  # no DNS query, no policy-cache read
    assert world.fetcher.fetches == 1


async def test_after_the_window_the_domain_is_checked_again(world: World) -> None:
    await world.checker.facts("good.test")
    spent = world.costs()
    world.clock.advance(5.0)
    await world.checker.facts("good.test")
    queries, reads = world.costs()
    assert queries > spent[0]
    assert reads > spent[1]


@pytest.mark.parametrize(
    "key",
    [
        ("good.test", "MX"),
        ("_mta-sts.good.test", "TXT"),
        ("_smtp._tls.good.test", "TXT"),
        ("mx.good.test", "ADDR"),
        ("_25._tcp.mx.good.test", "TLSA"),
    ],
)
async def test_the_shortest_ttl_bounds_the_memo(world: World, key: tuple[str, str]) -> None:
    world.resolver.table[key] = replace(world.resolver.table[key], ttl=2.0)
    await world.checker.facts("good.test")
    spent = world.costs()
    world.clock.advance(1.9)
    await world.checker.facts("good.test")
    assert world.costs() == spent
    world.clock.advance(0.1)
    await world.checker.facts("good.test")
    assert world.costs()[0] > spent[0]


async def test_a_ttl_counts_from_when_the_answer_came(world: World) -> None:
    # Every answer lives three seconds; the policy host takes two to answer, after them.
    for key, answer in world.resolver.table.items():
        world.resolver.table[key] = replace(answer, ttl=3.0)
    fetch = world.fetcher.fetch

    async def slow_fetch(domain: str, addresses: Awaitable[DnsAnswer[str]] | None) -> str:
        world.clock.advance(2)
        return await fetch(domain, addresses)

    world.fetcher.fetch = slow_fetch  # type: ignore[method-assign]
    await world.checker.facts("good.test")
    spent = world.costs()
    world.clock.advance(1)  # three seconds since the answers came, one since the check ended
    await world.checker.facts("good.test")
    assert world.costs()[0] > spent[0]


async def test_a_negative_answer_ttl_bounds_the_memo(world: World) -> None:
    # No TLS-RPT record: the NXDOMAIN's negative TTL (RFC 2308 §5) counts like any other.
    world.resolver.table[("_smtp._tls.good.test", "TXT")] = DnsAnswer(
        DnsStatus.NXDOMAIN, authenticated=True, ttl=1.0
    )
    await world.checker.facts("good.test")
    spent = world.costs()
    world.clock.advance(1.0)
    await world.checker.facts("good.test")
    assert world.costs()[0] > spent[0]


async def test_the_memo_never_outlives_the_cached_policy(world: World) -> None:
    await world.checker.facts("good.test")
    # The policy cached long ago expires in two seconds; the DNS answers live far longer.
    cached = world.cache.policies["good.test"]
    world.cache.policies["good.test"] = replace(cached, expires_at=world.clock.now + 2)
    world.checker.forget()
    facts = await world.checker.facts("good.test")
    assert facts.sts_policy.expires_at == world.clock.now + 2
    spent = world.costs()
    world.clock.advance(1.5)
    await world.checker.facts("good.test")
    assert world.costs() == spent
    world.clock.advance(0.5)
    await world.checker.facts("good.test")
    assert world.costs()[1] > spent[1]


TEMPORARY_CASES = {
    "MX lookup failed": (("good.test", "MX"), TEMPORARY),
    "MTA-STS TXT lookup failed": (("_mta-sts.good.test", "TXT"), TEMPORARY),
    "TLS-RPT lookup failed": (("_smtp._tls.good.test", "TXT"), TEMPORARY),
    "MX host address lookup failed": (("mx.good.test", "ADDR"), TEMPORARY),
    "TLSA lookup failed (DANE temporary)": (("_25._tcp.mx.good.test", "TLSA"), TEMPORARY),
}


@pytest.mark.parametrize("case", TEMPORARY_CASES, ids=list(TEMPORARY_CASES))
async def test_a_temporary_dns_failure_is_checked_again_at_the_next_message(
    world: World, case: str
) -> None:
    key, answer = TEMPORARY_CASES[case]
    world.resolver.table[key] = answer
    await world.checker.facts("good.test")
    spent = world.costs()
    await world.checker.facts("good.test")  # no time passes: still checked again
    assert world.costs()[0] > spent[0]


async def test_a_temporary_policy_fetch_failure_is_checked_again(world: World) -> None:
    world.fetcher.policies["good.test"] = PolicyFetchError(
        PolicyStatus.FETCH_ERROR, "timed out", temporary=True
    )
    facts = await world.checker.facts("good.test")
    assert facts.sts_policy.temporary
    spent = world.costs()
    await world.checker.facts("good.test")  # back-off: no fetch, but the facts are read again
    assert world.costs()[1] > spent[1]


async def test_a_failed_refresh_with_the_cached_policy_standing_in_is_checked_again(
    world: World,
) -> None:
    await world.checker.facts("good.test")
    # A new policy id, and its host times out: the cached policy stands in (RFC 8461 §5.1)...
    world.resolver.table[("_mta-sts.good.test", "TXT")] = found("v=STSv1; id=second;")
    world.fetcher.policies["good.test"] = PolicyFetchError(
        PolicyStatus.FETCH_ERROR, "timed out", temporary=True
    )
    world.clock.advance(5)
    facts = await world.checker.facts("good.test")
    assert facts.sts_policy.status is PolicyStatus.OK
    assert "fetch failed" in facts.sts_policy.error
    # ...but the next message looks again, so the new policy is used once it can be fetched.
    spent = world.costs()
    await world.checker.facts("good.test")
    assert world.costs()[1] > spent[1]


async def test_a_record_change_is_seen_once_the_memo_expires(world: World) -> None:
    await world.checker.facts("good.test")
    world.resolver.table[("good.test", "MX")] = found(MxRecord(10, "mx2.good.test"))
    world.clock.advance(1)
    assert (await world.checker.facts("good.test")).mx.hosts == ("mx.good.test",)
    world.clock.advance(4)
    assert (await world.checker.facts("good.test")).mx.hosts == ("mx2.good.test",)


async def test_zero_seconds_turns_the_memo_off() -> None:
    world = World(seconds=0)
    await world.checker.facts("good.test")
    spent = world.costs()
    await world.checker.facts("good.test")
    assert world.costs()[0] == 2 * spent[0]


async def test_concurrent_checks_of_one_domain_share_one_run(world: World) -> None:
    results = await asyncio.gather(*(world.checker.facts("good.test") for _ in range(10)))
    assert len(set(map(id, results))) == 1
    assert world.fetcher.fetches == 1
    assert world.resolver.queries == 5


async def test_a_check_begun_before_forget_is_not_kept(world: World) -> None:
    asked, release = asyncio.Event(), asyncio.Event()
    original = world.resolver.mx

    async def slow_mx(name: str) -> DnsAnswer[MxRecord]:
        asked.set()
        await release.wait()
        return await original(name)

    world.resolver.mx = slow_mx  # type: ignore[method-assign]
    task = asyncio.ensure_future(world.checker.facts("good.test"))
    await asked.wait()
    world.checker.forget()  # a reload while the check is under way
    release.set()
    await task
    spent = world.costs()
    await world.checker.facts("good.test")
    assert world.costs()[0] > spent[0]


def test_the_memo_keeps_the_most_recently_used_domains() -> None:
    memo = FactsMemo(5.0, entries=2)
    facts = _facts_of(World())
    for name in ("a.test", "b.test"):
        memo.put(name, replace(facts, domain=name), 0.0, None, memo.generation)
    assert memo.get("a.test", 1.0) is not None  # a.test is now the most recent
    memo.put("c.test", replace(facts, domain="c.test"), 1.0, None, memo.generation)
    assert len(memo) == 2
    assert memo.get("b.test", 1.0) is None
    assert memo.get("a.test", 1.0) is not None
    assert memo.get("c.test", 1.0) is not None


def _facts_of(world: World) -> Any:
    return asyncio.run(world.checker.facts("good.test"))


# --- the allowlist is matched per message --------------------------------------------------


async def test_a_reload_that_removes_a_domain_holds_the_next_message_at_once(
    world: World,
) -> None:
    listed = Allowlist((AllowlistEntry("good.test", wildcard=False),))
    posture = Posture(Settings(), InForce(listed), world.checker)
    first = await posture.assess("good.test")
    assert first.verdict.verdict is Verdict.SECURE
    # A second message a moment later: from the memo, and still secure.
    spent = world.costs()
    assert (await posture.assess("good.test")).verdict.verdict is Verdict.SECURE
    assert world.costs() == spent

    posture.use(InForce(Allowlist(())))  # SIGHUP with good.test taken off the list
    after = await posture.assess("good.test")
    assert after.verdict.verdict is Verdict.NOT_SECURE
    assert Reason.NOT_ALLOWLISTED in after.verdict.reasons


async def test_a_message_to_several_domains_has_each_judged_on_its_own_facts(
    world: World,
) -> None:
    listed = Allowlist((AllowlistEntry("good.test", wildcard=False),))
    posture = Posture(Settings(), InForce(listed), world.checker)
    known = await posture.assess("good.test")
    spent = world.costs()

    # good.test from the memo, gone.test (NXDOMAIN, not listed) checked now, each on its own.
    good, gone = await posture.assess_all(["good.test", "gone.test"])
    assert good.facts is known.facts
    assert good.verdict.verdict is Verdict.SECURE
    assert gone.facts.domain == "gone.test"
    assert gone.verdict.verdict is Verdict.NOT_SECURE
    assert Reason.NOT_ALLOWLISTED in gone.verdict.reasons
    assert Reason.NO_SUCH_DOMAIN in gone.verdict.reasons
    assert world.costs()[0] > spent[0]

    # Both known now: the next message costs no lookup.
    spent = world.costs()
    assert [a.verdict for a in await posture.assess_all(["good.test", "gone.test"])] == [
        good.verdict,
        gone.verdict,
    ]
    assert world.costs() == spent
    # A reload applies to the next message, to each of its domains.
    posture.use(InForce(Allowlist(())))
    again = await posture.assess_all(["good.test", "gone.test"])
    assert [a.verdict.verdict for a in again] == [Verdict.NOT_SECURE, Verdict.NOT_SECURE]
    assert Reason.NOT_ALLOWLISTED in again[0].verdict.reasons


async def test_an_allowlist_entry_that_expires_holds_the_next_message_at_once(
    world: World,
) -> None:
    # The facts stay memoised over midnight; the match, made for every message, does not.
    entry = AllowlistEntry("good.test", wildcard=False, expires=dt.date(2026, 3, 31))
    posture = Posture(Settings(), InForce(Allowlist((entry,))), world.checker)
    before = await posture.assess("good.test", today=dt.date(2026, 3, 31))
    again = await posture.assess("good.test", today=dt.date(2026, 3, 31))
    assert before.verdict.verdict is again.verdict.verdict is Verdict.SECURE
    spent = world.costs()
    after = await posture.assess("good.test", today=dt.date(2026, 4, 1))
    assert world.costs() == spent  # the same facts
    assert after.facts is before.facts
    assert after.verdict.verdict is Verdict.NOT_SECURE
    assert after.verdict.reasons == (Reason.ALLOWLIST_EXPIRED,)
    assert after.record.allowlist == "expired"
    assert before.record.allowlist == "allowed"


# --- who uses the memo ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "memo", "seconds"),
    [
        ({}, True, 5.0),  # gateway serve: the default
        ({"GATEWAY_DNS_FACTS_CACHE_SECONDS": "0"}, True, 0.0),  # turned off
        ({}, False, 0.0),  # gateway check: a person asking wants fresh facts
    ],
)
async def test_serve_memoises_and_check_does_not(
    tmp_path: Path, environ: dict[str, str], memo: bool, seconds: float
) -> None:
    settings = loader.load(None, environ={"GATEWAY_STORE_DATA_DIR": str(tmp_path), **environ})
    async with parts.open_posture(settings, Allowlist(()), memo=memo) as posture:
        assert posture.checker.memo_seconds == seconds
