"""A verified connection to an MX host carries the next message to that host, as Postfix's
connection cache does, against the rig's real STARTTLS servers (rig.mx).

Reuse is only for what the connection proved: each copy's proof of delivery names the same
host, address, TLS version, cipher and authentication a new connection would have; a
connection the host closed meanwhile is replaced with the message delivered once; a message
whose plan needs DANE never rides a connection that proved MTA-STS; a connection is retired
after its bound of messages, age or idle time.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.config import loader
from gateway.core.model import DomainFacts
from gateway.delivery.deliver import Delivery, Report, Trace
from gateway.delivery.mx import MxTransport
from gateway.delivery.mxcache import ConnectionCache
from gateway.delivery.transport import Recipient, Transaction
from gateway.runtime import parts
from gateway.store import AuditRecord
from rig import mx
from rig.mx import MxServers
from rig.rig import Rig
from rig.zones import self_signed

STS, DANE = "deliver-sts.test", "deliver-dane.test"
DATA = b"Subject: referral\r\nMessage-ID: <reuse@school.test>\r\n\r\nConfidential\r\n"
TLS_FACTS = ("route", "host", "address", "port", "tls_version", "cipher", "authenticated")


class Journal:
    """The relay journal's part that ``Delivery`` uses, keeping the trail's proofs."""

    def __init__(self) -> None:
        self.audit: list[AuditRecord] = []

    async def relayed(self, key: str) -> frozenset[str]:
        return frozenset()

    async def record_relayed(
        self, key: str, recipients: Sequence[str], audit: Sequence[AuditRecord] = ()
    ) -> None:
        self.audit.extend(audit)


class Facts:
    """The posture's facts of a domain, changed by ``change`` when a test sets it (the policy
    a domain published a moment later)."""

    def __init__(self, checker: Any) -> None:
        self._checker = checker
        self.change: Callable[[DomainFacts], DomainFacts] | None = None

    async def facts(self, domain: str) -> DomainFacts:
        facts: DomainFacts = await self._checker.facts(domain)
        return self.change(facts) if self.change is not None else facts


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Direct:
    delivery: Delivery
    journal: Journal
    facts: Facts
    cache: ConnectionCache
    checker: Any
    sent: int = 0

    async def send(self, domain: str) -> Report:
        self.sent += 1
        t = Transaction(
            "head@school.test", (Recipient(f"lead{self.sent}@{domain}"),), DATA, flagged=True
        )
        trace = Trace("mta", "127.0.0.1", "ESMTP", f"q{self.sent}", "flagged", message_id="<r@s>")
        return await self.delivery.deliver(t, f"k{self.sent}", trace=trace)

    def proofs(self) -> list[dict[str, Any]]:
        return [dict(entry.data) for entry in self.journal.audit if entry.event == "delivered"]


def servers_for(rig: Rig, domain: str, behaviours: tuple[str, ...]) -> Any:
    row = rig.domain(domain)
    hosts = {h: (row.address(h), b) for h, b in zip(row.mx_hosts, behaviours, strict=True)}
    leaves = {h: rig.certs[self_signed(h)] for h in hosts if self_signed(h) in rig.certs}
    return mx.mx_servers(rig.ca, hosts, leaves)


@contextlib.asynccontextmanager
async def direct(
    rig: Rig, tmp_path: Path, servers: MxServers, cache: ConnectionCache | None = None
) -> AsyncIterator[Direct]:
    path = rig.write_config(
        tmp_path / "gateway.toml",
        delivery={
            "mx_port": servers.port,
            "allow_private_addresses": True,
            "ca_file": rig.ca_file,
            "timeout": "5s",
        },
    )
    settings = loader.load(path)
    delivery_settings = dataclasses.replace(
        settings.delivery, ca_file=str(settings.path(settings.delivery.ca_file))
    )
    cache = cache or ConnectionCache()
    # No memo: the tests change a domain's facts from one message to the next.
    allowlist = parts.load_allowlist(settings).allowlist
    async with parts.open_posture(settings, allowlist, memo=False) as posture:
        facts = Facts(posture.checker)
        transport = MxTransport(
            delivery_settings,
            facts,
            posture.checker.resolver,
            "gw.test",
            cache=cache,
        )
        journal = Journal()
        delivery = Delivery(transport, journal, "gw.test")
        try:
            yield Direct(delivery, journal, facts, cache, posture.checker)
        finally:
            await delivery.close()


def mx1(domain: str) -> str:
    return f"mx1.{domain}"


def mx2(domain: str) -> str:
    return f"mx2.{domain}"


async def test_two_messages_to_one_host_ride_one_connection_with_the_same_proof(
    rig: Rig, tmp_path: Path
) -> None:
    with servers_for(rig, STS, (mx.GOOD, mx.GOOD)) as servers:
        async with direct(rig, tmp_path, servers) as gw:
            for _ in range(2):
                assert (await gw.send(STS)).accepted
            assert gw.cache.reused == 1
        assert servers[mx1(STS)].connections == 1
        received = servers[mx1(STS)].messages
        assert [m.rcpt_tos for m in received] == [(f"lead1@{STS}",), (f"lead2@{STS}",)]
        assert all(m.tls_version.startswith("TLSv1.") for m in received)
    one, two = gw.proofs()
    assert (one["host"], one["authenticated"]) == (mx1(STS), "mta-sts-webpki")
    assert {k: two[k] for k in TLS_FACTS} == {k: one[k] for k in TLS_FACTS}
    assert one["tls_version"] == received[1].tls_version  # what the server saw, too
    assert one["cipher"] == received[1].cipher


async def test_a_connection_the_host_closed_is_replaced_and_the_message_goes_once(
    rig: Rig, tmp_path: Path
) -> None:
    with servers_for(rig, STS, (mx.GOOD, mx.GOOD)) as servers:
        host = servers[mx1(STS)]
        async with direct(rig, tmp_path, servers) as gw:
            assert (await gw.send(STS)).accepted
            assert gw.cache.idle_count() == 1
            # It closes every connection it has, the idle one too; our loop must run
            # meanwhile, to answer the TLS close.
            await asyncio.to_thread(host.stop)
            host.start()
            report = await gw.send(STS)
            assert report.accepted == (f"lead2@{STS}",)
            assert not report.failure
        assert host.connections == 2
        assert [m.rcpt_tos for m in host.messages] == [(f"lead1@{STS}",), (f"lead2@{STS}",)]
        assert servers[mx2(STS)].messages == []
    one, two = gw.proofs()
    assert two["host"] == mx1(STS)
    assert two["skipped"] == one["skipped"] == []  # the closed connection is no finding


def mta_sts_only(dane: DomainFacts, sts: DomainFacts) -> Callable[[DomainFacts], DomainFacts]:
    """deliver-dane.test as if it published no TLSA records but an MTA-STS enforce policy
    naming mx2 (whose certificate is from the rig's CA): mx2 is then an MTA-STS host."""
    assert sts.sts_policy.policy is not None
    policy = dataclasses.replace(sts.sts_policy.policy, mx=(mx2(DANE),))

    def change(facts: DomainFacts) -> DomainFacts:
        return dataclasses.replace(
            dane,
            dane=dataclasses.replace(dane.dane, hosts=()),
            sts_record=sts.sts_record,
            sts_policy=dataclasses.replace(sts.sts_policy, policy=policy),
        )

    return change


async def test_a_message_needing_dane_never_rides_a_connection_that_proved_mta_sts(
    rig: Rig, tmp_path: Path
) -> None:
    # mx1 down: every message goes to mx2, first under MTA-STS, then under its TLSA record.
    with servers_for(rig, DANE, (mx.DOWN, mx.GOOD)) as servers:
        async with direct(rig, tmp_path, servers) as gw:
            dane, sts = await gw.checker.facts(DANE), await gw.checker.facts(STS)
            gw.facts.change = mta_sts_only(dane, sts)
            assert (await gw.send(DANE)).accepted
            assert gw.cache.idle_count() == 1  # kept, for MTA-STS messages to mx2
            gw.facts.change = None
            assert (await gw.send(DANE)).accepted
            assert gw.cache.reused == 0
            assert gw.cache.idle_count() == 2  # one per proof
            gw.facts.change = mta_sts_only(dane, sts)
            assert (await gw.send(DANE)).accepted  # the MTA-STS one, again
            assert gw.cache.reused == 1
        assert servers[mx2(DANE)].connections == 2
        assert len(servers[mx2(DANE)].messages) == 3
    proofs = [(p["host"], p["authenticated"]) for p in gw.proofs()]
    assert proofs == [
        (mx2(DANE), "mta-sts-webpki"),
        (mx2(DANE), "dane-ta"),
        (mx2(DANE), "mta-sts-webpki"),
    ]


async def test_a_host_no_longer_named_by_the_policy_gets_nothing_on_its_kept_connection(
    rig: Rig, tmp_path: Path
) -> None:
    with servers_for(rig, STS, (mx.GOOD, mx.GOOD)) as servers:
        async with direct(rig, tmp_path, servers) as gw:
            assert (await gw.send(STS)).accepted  # to mx1, kept
            sts = await gw.checker.facts(STS)
            assert sts.sts_policy.policy is not None
            policy = dataclasses.replace(sts.sts_policy.policy, mx=(mx2(STS),))
            names_mx2 = dataclasses.replace(sts.sts_policy, policy=policy)
            gw.facts.change = lambda facts: dataclasses.replace(facts, sts_policy=names_mx2)
            assert (await gw.send(STS)).accepted
        assert len(servers[mx1(STS)].messages) == 1
        assert [m.rcpt_tos for m in servers[mx2(STS)].messages] == [(f"lead2@{STS}",)]
    assert [p["host"] for p in gw.proofs()] == [mx1(STS), mx2(STS)]


async def test_a_connection_is_retired_after_its_bound_of_messages(
    rig: Rig, tmp_path: Path
) -> None:
    with servers_for(rig, STS, (mx.GOOD, mx.GOOD)) as servers:
        async with direct(rig, tmp_path, servers, ConnectionCache(max_messages=2)) as gw:
            for _ in range(5):
                assert (await gw.send(STS)).accepted
        assert servers[mx1(STS)].connections == 3  # 2 + 2 + 1
        assert len(servers[mx1(STS)].messages) == 5


async def test_an_idle_or_old_connection_is_not_reused(rig: Rig, tmp_path: Path) -> None:
    ticks = Ticks()
    cache = ConnectionCache(idle=5.0, lifetime=20.0, clock=ticks)
    with servers_for(rig, STS, (mx.GOOD, mx.GOOD)) as servers:
        async with direct(rig, tmp_path, servers, cache) as gw:
            # Seconds after the first message (connection A at 0): B opens at 9, after A
            # waited 5 s unused; C at 29, when B is 20 s old.
            for moment in (0, 4, 9, 13, 17, 21, 25, 29):
                ticks.now = 1000.0 + moment
                assert (await gw.send(STS)).accepted
        assert servers[mx1(STS)].connections == 3
        assert gw.cache.reused == 5
        assert len(servers[mx1(STS)].messages) == 8
