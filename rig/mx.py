"""A recipient domain's MX hosts on loopback: one recording ``Upstream`` per host, each on its
own 127.0.0.x address and all on one port (the gateway's ``[delivery] mx_port``), each told
how to misbehave.

    with mx_servers(rig.ca, {"mx1.deliver-sts.test": ("127.0.0.21", EXPIRED),
                              "mx2.deliver-sts.test": ("127.0.0.22", GOOD)}) as servers:
        servers.port, servers["mx2.deliver-sts.test"].messages

Behaviours: ``GOOD`` (STARTTLS with a rig-CA certificate for the host, chain included),
``NO_STARTTLS`` (TLS configured but not offered: what a downgrade looks like), ``PLAINTEXT``
(no TLS at all), ``TLSA_MISMATCH`` (like ``GOOD``, but never the leaf given for the host),
``TLS10_ONLY`` (the handshake fails), ``OTHER_NAME`` (certificate for another
host), ``EXPIRED``, ``SELF_SIGNED`` (no CA; matches a DANE-EE record made from it),
``TEMPFAIL`` (451 to MAIL), ``PERMFAIL`` (550 to MAIL), ``SLOW`` (DATA answered after the
client gave up), ``DOWN`` (nothing listening). Every server but ``NO_REQUIRETLS`` advertises
REQUIRETLS once TLS is up (RFC 8689 §4).
"""

from __future__ import annotations

import contextlib
import ssl
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from rig.pki import Leaf, RigCA
from rig.ports import free_port
from rig.upstream import Upstream

GOOD = "good"
NO_STARTTLS = "no-starttls"
PLAINTEXT = "plaintext"
TLS10_ONLY = "tls1.0-only"
OTHER_NAME = "other-name"
EXPIRED = "expired"
SELF_SIGNED = "self-signed"
TEMPFAIL = "tempfail"
PERMFAIL = "permfail"
SLOW = "slow"
DOWN = "down"
NO_REQUIRETLS = "no-requiretls"
TLSA_MISMATCH = "tlsa-mismatch"  # a valid rig-CA certificate, not the one a TLSA record names

SLOW_SECONDS = 30.0


@dataclass
class MxServers:
    """The running servers, by MX host name."""

    port: int
    servers: dict[str, Upstream] = field(default_factory=dict)

    def __getitem__(self, host: str) -> Upstream:
        return self.servers[host]

    def all_messages(self) -> int:
        return sum(len(server.messages) for server in self.servers.values())

    def close(self) -> None:
        for server in self.servers.values():
            server.close()


def server_context(
    leaf: Leaf, chain: tuple[Path, ...] = (), tls10_only: bool = False
) -> ssl.SSLContext:
    """A server context presenting ``leaf`` followed by ``chain`` (issuer certificates)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    bundle = leaf.cert_file
    if chain:
        bundle = leaf.cert_file.with_name(leaf.cert_file.name + ".chain.pem")
        bundle.write_bytes(leaf.cert_file.read_bytes() + b"".join(p.read_bytes() for p in chain))
    context.load_cert_chain(bundle, leaf.key_file)
    if tls10_only:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = ssl.TLSVersion.TLSv1
            context.maximum_version = ssl.TLSVersion.TLSv1
    return context


def _context(ca: RigCA, host: str, behaviour: str) -> ssl.SSLContext | None:
    if behaviour == PLAINTEXT:
        return None
    chain = (ca.ca_file,)
    if behaviour == OTHER_NAME:
        return server_context(ca.issue((f"other.{host}",), stem=f"other-{host}"), chain)
    if behaviour == EXPIRED:
        return server_context(ca.issue((host,), stem=f"expired-{host}", expired=True), chain)
    if behaviour == SELF_SIGNED:
        return server_context(ca.self_signed((host,)))
    leaf = ca.issue((host,), stem=f"mx-{host}")
    return server_context(leaf, chain, tls10_only=behaviour == TLS10_ONLY)


def start_mx(
    ca: RigCA, host: str, address: str, port: int, behaviour: str = GOOD, leaf: Leaf | None = None
) -> Upstream:
    """One MX host; ``leaf`` overrides the certificate (e.g. the one a TLSA record names)."""
    tls = server_context(leaf) if leaf is not None else _context(ca, host, behaviour)
    server = Upstream(port=port, host=address, tls=tls, name=host)
    server.offer_starttls = behaviour != NO_STARTTLS
    server.requiretls = behaviour != NO_REQUIRETLS
    if behaviour == TEMPFAIL:
        server.fail_mail = 451
    if behaviour == PERMFAIL:
        server.fail_mail = 550
    if behaviour == SLOW:
        server.data_delay = SLOW_SECONDS
    if behaviour != DOWN:
        server.start()
    return server


@contextlib.contextmanager
def mx_servers(
    ca: RigCA,
    hosts: Mapping[str, tuple[str, str]],
    leaves: Mapping[str, Leaf] | None = None,
) -> Iterator[MxServers]:
    """Start one server per ``host: (address, behaviour)``, all on a fresh port."""
    running = MxServers(free_port())
    try:
        for host, (address, behaviour) in hosts.items():
            leaf = (leaves or {}).get(host) if behaviour == GOOD else None
            running.servers[host] = start_mx(ca, host, address, running.port, behaviour, leaf)
        yield running
    finally:
        running.close()
