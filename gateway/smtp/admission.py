"""Who may use the SMTP face, and on what terms.

A client is trusted (may send mail through the gateway) when its address is in
``trusted_networks``, when it presents a verified certificate naming one of
``trusted_client_names`` (how an Exchange Online connector identifies itself), or once it has
authenticated with a ``submit`` account. Anyone else gets ``554 5.7.1``: in place of the
greeting when no other way to be trusted exists (inbound TLS off), else at MAIL, so that it
can still start TLS and identify itself (RFC 5321 §3.1: never an open relay).

``require_tls``: MAIL before STARTTLS gets ``530 5.7.0`` (RFC 3207 §4) unless the client's
address is in ``tls_exempt_networks``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gateway.smtp.auth import SubmitAuth
from gateway.smtp.reply import SmtpReply

NOT_TRUSTED = SmtpReply(554, "5.7.1", "Relay access denied: not a trusted network")
TOO_MANY_CONNECTIONS = SmtpReply(421, "4.3.2", "Too many connections; try again later")
MUST_STARTTLS = SmtpReply(530, "5.7.0", "Must issue a STARTTLS command first")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Identity:
    """The inbound TLS rules and the ways to be trusted besides the network."""

    tls: bool = False  # STARTTLS or implicit TLS is on
    require_tls: bool = False
    trusted_client_names: tuple[str, ...] = ()
    auth: SubmitAuth | None = None  # SMTP AUTH for submit accounts (TLS sessions only)


class Admission:
    """Who may connect, and how many at once."""

    def __init__(
        self,
        trusted_networks: Sequence[str],
        max_connections: int,
        identity: Identity | None = None,
        tls_exempt_networks: Sequence[str] = (),
    ) -> None:
        self._networks = _networks(trusted_networks)
        self._exempt = _networks(tls_exempt_networks)
        self._max = max_connections
        self.identity = identity or Identity()
        self.active = 0

    def trusted(self, peer: Any) -> bool:
        return _within(peer, self._networks)

    def exempt_from_tls(self, peer: Any) -> bool:
        return _within(peer, self._exempt)

    def refusal(self, peer: Any) -> SmtpReply | None:
        """The reply in place of the greeting, or None to greet the client."""
        if not self.identity.tls and not self.trusted(peer):
            return NOT_TRUSTED
        if self.active >= self._max:
            return TOO_MANY_CONNECTIONS
        return None

    def mail_refusal(self, peer: Any, secure: bool, trusted: bool) -> SmtpReply | None:
        """The reply to MAIL from a session so far, or None to go on."""
        if self.identity.require_tls and not secure and not self.exempt_from_tls(peer):
            return MUST_STARTTLS
        if not trusted:
            return NOT_TRUSTED
        return None


def _networks(names: Sequence[str]) -> list[Network]:
    return [ipaddress.ip_network(n, strict=False) for n in names]


def _within(peer: Any, networks: Sequence[Network]) -> bool:
    try:
        address = ipaddress.ip_address(peer[0])
    except (TypeError, ValueError, IndexError):
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)
