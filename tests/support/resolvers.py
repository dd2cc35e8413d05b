"""The gateway's real resolver pointed at a test DNS server, never at the system's."""

from __future__ import annotations

from gateway.config.settings import DnsSettings
from gateway.config.values import HostPort
from gateway.posture.dns import DnsResolver
from support.dnsserver import DnsServer


def resolver_for(
    server: DnsServer,
    *,
    trust_ad: bool = True,
    timeout: float = 2.0,
    max_concurrency: int = 64,
    cache_size: int = 0,
) -> DnsResolver:
    """A DnsResolver that talks only to ``server``; without an answer cache unless asked, so
    that tests see every query the gateway makes."""
    return DnsResolver(
        DnsSettings(
            nameservers=(HostPort.parse(server.nameserver, 53),),
            timeout=timeout,
            trust_ad=trust_ad,
            max_concurrency=max_concurrency,
            cache_size=cache_size,
        )
    )


__all__ = ["resolver_for"]
