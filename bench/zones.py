"""The bench's own rows for the rig's zone table: 200 secure domains for the cold start, and the
secure domain of the direct-delivery scenario.

They are added to the rig's ZONES only in the bench's process (``start_rig(rows=...)``); the
tests' table is untouched. Each is set up like ``secure.test``: two MX hosts, an MTA-STS record
and an enforce policy covering both, TLS-RPT, and an allowlist entry.
"""

from __future__ import annotations

from rig.zones import ZONES, Domain, Policy

COLD_COUNT = 200
# Policy hosts that answer only after a delay (see bench.fetchwatch): a few slow domains
# among the 200, so the cold start can show that nobody else waits for them.
SLOW_EVERY = 50


def cold_domain(index: int) -> str:
    return f"cold{index:03d}.test"


def cold_domains() -> list[str]:
    return [cold_domain(i) for i in range(1, COLD_COUNT + 1)]


def slow_domains() -> list[str]:
    return [cold_domain(i) for i in range(SLOW_EVERY, COLD_COUNT + 1, SLOW_EVERY)]


def _secure(name: str) -> Domain:
    hosts = (f"mx1.{name}", f"mx2.{name}")
    return Domain(
        name=name,
        verdict="secure",
        note="bench: cold-start domain",
        mx=((10, hosts[0]), (20, hosts[1])),
        sts=((f"v=STSv1; id=bench{name[4:7]};",),),
        policy=Policy(mx=hosts),
        tlsrpt=f"v=TLSRPTv1; rua=mailto:tlsrpt@{name}",
    )


# The direct-delivery scenario's domain: one MX host, on an address of its own where the bench's
# TLS sink listens, and an enforce MTA-STS policy naming it (RFC 8461 §3.2).
DIRECT_DOMAIN = "benchdirect.test"
DIRECT_MX = f"mx1.{DIRECT_DOMAIN}"
DIRECT_ADDRESS = "127.0.0.61"


def _direct() -> Domain:
    return Domain(
        name=DIRECT_DOMAIN,
        verdict="secure",
        note="bench: direct delivery to the TLS sink",
        mx=((10, DIRECT_MX),),
        sts=(("v=STSv1; id=benchdirect1;",),),
        policy=Policy(mx=(DIRECT_MX,)),
        tlsrpt=f"v=TLSRPTv1; rua=mailto:tlsrpt@{DIRECT_DOMAIN}",
        addresses=((DIRECT_MX, DIRECT_ADDRESS),),
    )


def rows() -> tuple[Domain, ...]:
    return (*ZONES, *(_secure(name) for name in cold_domains()), _direct())
