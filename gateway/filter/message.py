"""A message as the filter sees it: what the SMTP face hands over (``Incoming``), the work in
progress once it is classified and decided (``Work``), and what is derived from them."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.core import classify, headers
from gateway.core.addresses import AddressError, address_domain
from gateway.core.model import RecipientDecision
from gateway.core.model import Transport as Route
from gateway.delivery.transport import Recipient
from gateway.posture.assessment import Assessment


@dataclass(frozen=True)
class Incoming:
    client_ip: str
    helo: str
    esmtp: bool
    sender: str  # "" for the null reverse-path
    mail_options: tuple[str, ...]
    recipients: tuple[Recipient, ...]
    data: bytes
    smtputf8: bool = False
    # The session's TLS ("" for plaintext) and SMTP AUTH account ("" for none), for the
    # Received: field; and the client's RFC 8689 REQUIRETLS (only ever set over TLS).
    tls_version: str = ""
    cipher: str = ""
    auth_user: str = ""
    requiretls: bool = False
    # XFORWARD (gateway.smtp.xforward): when the MTA in front named its client, client_ip and
    # helo are that client's ("" when the MTA did not know), and these say the rest: the
    # client's host name, how the MTA had the message and its id for it, and the MTA itself,
    # the hop the message came via (its address and HELO name; "" when not forwarded).
    client_name: str = ""
    client_proto: str = ""
    upstream_id: str = ""
    via_ip: str = ""
    via_helo: str = ""


@dataclass(frozen=True)
class Work:
    queue_id: str
    incoming: Incoming
    data: bytes
    parsed: headers.Headers
    findings: tuple[classify.Finding, ...]
    decisions: tuple[RecipientDecision, ...]
    assessments: dict[str, Assessment]

    @functools.cached_property
    def key(self) -> str:
        """Idempotency key: the same message from the same sender to the same recipients.
        Computed once: the hold, the journal read and the journal write all ask for it, and
        each asking hashed the whole message again."""
        digest = hashlib.sha256()
        digest.update(self.incoming.sender.encode("utf-8", "surrogateescape") + b"\0")
        for recipient in sorted(r.address for r in self.incoming.recipients):
            digest.update(recipient.encode("utf-8", "surrogateescape") + b"\0")
        digest.update(self.data)
        return digest.hexdigest()


def summary(work: Work, decisions: Sequence[RecipientDecision]) -> str:
    if not work.assessments:
        return f"not flagged; relayed unchecked; id={work.queue_id}"
    lowest = min((d.transport for d in decisions), default=Route.NONE)
    label = "flagged" if work.findings else "checked"
    return f"{label}; relayed to secure recipients; transport={lowest.label}; id={work.queue_id}"


def protocol(incoming: Incoming) -> str:
    """RFC 3848 / RFC 6531 §3.7.3 protocol types for the Received: "with" clause: an "S"
    for TLS, an "A" for SMTP AUTH (ESMTPSA, UTF8SMTPSA)."""
    if incoming.smtputf8:
        base = "UTF8SMTP"
    elif incoming.esmtp or incoming.tls_version:
        base = "ESMTP"
    else:
        return "SMTP"
    if incoming.tls_version:
        base += "SA" if incoming.auth_user else "S"
    return base


def client_text(incoming: Incoming) -> str:
    """The message's client as the hold and the audit trail record it: the peer's address, or
    for a client the MTA named with XFORWARD, that client in the style of Postfix's logs
    (``name[addr]``), its HELO name, the MTA it came via and the MTA's id for the message."""
    if not incoming.via_ip:
        return incoming.client_ip
    address = f"[{incoming.client_ip}]" if incoming.client_ip else "[unknown]"
    text = f"{incoming.client_name}{address}" if incoming.client_name else address[1:-1]
    if incoming.helo:
        text += f" (HELO {incoming.helo})"
    text += f" via {incoming.via_ip}"
    return text + (f", MTA queue id {incoming.upstream_id}" if incoming.upstream_id else "")


def forwarded_fields(incoming: Incoming) -> dict[str, str]:
    """What the log line of a message's arrival says besides ``client`` when the client was
    named with XFORWARD: the MTA's address and the rest of what it said."""
    if not incoming.via_ip:
        return {}
    fields = {
        "via": incoming.via_ip,
        "client_name": incoming.client_name,
        "helo": incoming.helo,
        "client_proto": incoming.client_proto,
        "upstream_id": incoming.upstream_id,
    }
    return {key: value for key, value in fields.items() if value}


def trace_comment(incoming: Incoming) -> str:
    """The Received: field's comments: the MTA the message came via when it named its client
    with XFORWARD; TLS and AUTH: the version and cipher, and the account (its name only, never
    anything of the password)."""
    parts = []
    if incoming.via_ip:
        via = headers.address_literal(incoming.via_ip)
        parts.append(f"(via {incoming.via_helo or 'unknown'} {via})")
    if incoming.tls_version:
        parts.append(f"(using {incoming.tls_version} with cipher {incoming.cipher or 'unknown'})")
    if incoming.auth_user:
        parts.append(f"(authenticated as {incoming.auth_user})")
    return " ".join(parts)


def domain_or_none(address: str) -> str | None:
    try:
        return address_domain(address)
    except AddressError:
        return None
