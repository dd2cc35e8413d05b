"""Whom a client trusted by its certificate or its account may send as.

Exchange Online's outbound connectors of every tenant present the same certificate
(``mail.protection.outlook.com``): trusting that name alone would let any tenant relay
through the gateway. So a client trusted by its certificate name, and likewise one trusted by
a ``submit`` account (a device of ours sends as us), may send only mail whose envelope sender
(unless null, RFC 5321 §4.5.5) and every From: address (RFC 5322 §3.6.2) are in ``[policy]
local_domains``. Clients trusted by their network are not bound. Anything else gets 550 5.7.1
(RFC 3463 §3.8): at MAIL for the envelope sender, after DATA for From:.
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.core import headers
from gateway.core.addresses import AddressError, address_domain, normalise_domain
from gateway.smtp.reply import SmtpReply

NOT_OUR_SENDER = SmtpReply(550, "5.7.1", "Sender domain not allowed for this client")


def bound(trusted_as: str) -> bool:
    """Whether a session trusted this way may send only as the local domains."""
    return trusted_as.startswith(("certificate ", "account "))


class SenderRule:
    """The envelope sender and From: check for bound sessions."""

    def __init__(self, local_domains: Sequence[str]) -> None:
        self._local = frozenset(normalise_domain(d) for d in local_domains)

    def envelope_refusal(self, sender: str) -> SmtpReply | None:
        """The reply to MAIL FROM:<sender> (None: allowed); the null sender is allowed."""
        if sender in ("", "<>") or self._is_local(sender):
            return None
        return NOT_OUR_SENDER

    def header_refusal(self, data: bytes) -> SmtpReply | None:
        """The reply after DATA (None: allowed): exactly one From: field (RFC 5322 §3.6),
        naming at least one address, every one of them in the local domains."""
        parsed = headers.parse(headers.normalise_line_endings(data))
        values = parsed.get_all("From")
        found = headers.addresses(values[0]) if len(values) == 1 else []
        if found and all(self._is_local(a) for a in found):
            return None
        return NOT_OUR_SENDER

    def _is_local(self, address: str) -> bool:
        try:
            return address_domain(address) in self._local
        except AddressError:
            return False
