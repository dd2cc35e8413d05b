"""XFORWARD (Postfix's XFORWARD_README): the MTA in front of the gateway tells it whom it had the
message from, so that a hold, the audit trail, the log and the Received: field name the staff
member's own machine, not the MTA (which is kept too, as the hop the message came "via").

Who may use it: only clients trusted by their network (``[smtp] trusted_networks``, the
organisation's own MTAs), and only they are offered it in the EHLO reply. The README: "The
XFORWARD command changes audit trails. Use of this command must be restricted to authorized
clients." A client trusted by its certificate name is not authorised: Exchange Online's
connectors of every tenant present the same certificate (see ``senders``), so any tenant could
write what it liked into our trail; a client trusted by a ``submit`` account is one device,
which speaks for itself. Anyone else gets 550 5.7.0, as Postfix answers, and nothing is kept.

The command: ``XFORWARD 1*(SP name=value)``, names case-insensitive, values xtext (RFC 3461 §4)
of at most 255 characters; ``[UNAVAILABLE]`` (any case) or ``[TEMPUNAVAIL]`` means unknown. Not
between MAIL and the end of the transaction (503). The first XFORWARD of a transaction starts
from all unknown and later ones add to it; the end of the transaction (the end of DATA, RSET,
and EHLO/HELO and STARTTLS, which reset it) forgets them ("XFORWARD Server operation"): they live
on the transaction's envelope, which aiosmtpd replaces at each of those. They never change who
is trusted: admission looks at the TCP peer only.

What is checked (as Postfix's smtpd does): NAME must be a host name, ADDR an address (IPv6 ones
prefixed ``IPV6:``), PORT a number, SOURCE LOCAL or REMOTE; anything else is 501. In HELO, PROTO
and IDENT, which the MTA copies from what its client said, characters that are unsafe in a
header or a log are replaced by "?" rather than refused: a 501 would make the MTA fail the
delivery for a quirk of the staff member's machine.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace

from gateway.smtp.reply import SmtpReply

ATTRIBUTES = ("NAME", "ADDR", "PORT", "PROTO", "HELO", "IDENT", "SOURCE")
EHLO_KEYWORD = "XFORWARD " + " ".join(ATTRIBUTES)

OK = SmtpReply(250, "2.0.0", "Ok")
NOT_PERMITTED = SmtpReply(550, "5.7.0", "Error: insufficient authorization")
IN_TRANSACTION = SmtpReply(503, "5.5.1", "Error: MAIL transaction in progress")
SYNTAX = SmtpReply(501, "5.5.4", "Syntax: XFORWARD attribute=value ...")
TOO_LONG = SmtpReply(501, "5.5.4", "Error: attribute value too long")

_MAX_VALUE = 255  # README, note 1
_MAX_PROTO = 64
_UNKNOWN = frozenset({"[UNAVAILABLE]", "[TEMPUNAVAIL]"})
# RFC 3461 §4: xchar is "!" to "~" except "+" and "="; hexchar is "+" and two upper-case digits.
_XTEXT = re.compile(r"(?:[!-*,-<>-~]|\+[0-9A-F]{2})+\Z")
_HEX = re.compile(r"\+([0-9A-F]{2})")
_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\Z")
# Characters Postfix neuters in forwarded values (smtpd.c NEUTER_CHARACTERS): special in a
# header field or a log line.
_UNSAFE = re.compile(r'[^!-~]|[<>()\\";@]')


@dataclass(frozen=True)
class Forwarded:
    """What the MTA said of its client; "" is unknown."""

    name: str = ""  # the client's host name, as the MTA found it in the DNS
    addr: str = ""  # its address, without brackets or the IPV6: prefix
    port: str = ""
    proto: str = ""  # how the MTA had it, e.g. ESMTP
    helo: str = ""  # the name the client announced itself with
    ident: str = ""  # the MTA's own id of the message (its queue id): for its logs
    source: str = ""  # LOCAL (the message started on the MTA itself) or REMOTE


def bad(name: str) -> SmtpReply:
    return SmtpReply(501, "5.5.4", f"Bad XFORWARD {name} syntax")


def command(
    arg: str | None, *, permitted: bool, in_transaction: bool, current: Forwarded | None
) -> tuple[SmtpReply, Forwarded | None]:
    """The reply to ``XFORWARD arg``, and the attributes the transaction has afterwards."""
    if not permitted:
        return NOT_PERMITTED, current
    if in_transaction:
        return IN_TRANSACTION, current
    update = parse(arg or "")
    if isinstance(update, SmtpReply):
        return update, current
    return OK, replace(current or Forwarded(), **update)


def parse(arg: str) -> dict[str, str] | SmtpReply:
    """The attributes of one XFORWARD command by field name of ``Forwarded``, or a 501."""
    words = arg.split()
    if not words:
        return SYNTAX
    values: dict[str, str] = {}
    for word in words:
        name, _, raw = word.partition("=")
        name = name.upper()
        if not raw:
            return SYNTAX
        if name not in ATTRIBUTES:
            return SmtpReply(501, "5.5.4", "Bad XFORWARD attribute name")
        if len(raw) > _MAX_VALUE:
            return TOO_LONG
        text = decode_xtext(raw)
        value = None if text is None else _checked(name, text)
        if value is None:
            return bad(name)
        values[name.lower()] = value
    return values


def decode_xtext(raw: str) -> str | None:
    """RFC 3461 §4 xtext decoded, or None when ``raw`` is not xtext."""
    if not _XTEXT.match(raw):
        return None
    return _HEX.sub(lambda m: chr(int(m.group(1), 16)), raw)


def _checked(name: str, value: str) -> str | None:
    """The value to keep ("" for unknown), or None when it is malformed."""
    if value.upper() in _UNKNOWN:
        return ""
    if name in ("HELO", "PROTO", "IDENT"):
        if name == "PROTO" and len(value) > _MAX_PROTO:
            return None
        return _UNSAFE.sub("?", value)
    if name == "NAME":
        return value if _hostname(value) else None
    if name == "ADDR":
        return _address(value)
    if name == "PORT":
        return value if value.isascii() and value.isdigit() and int(value) <= 65535 else None
    return value.upper() if value.upper() in ("LOCAL", "REMOTE") else None  # SOURCE


def _hostname(value: str) -> bool:
    labels = value.removesuffix(".").split(".")
    return len(value) <= 255 and all(_LABEL.match(label) for label in labels)


def _address(value: str) -> str | None:
    text = value[5:] if value[:5].upper() == "IPV6:" else value
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def client_fields(forwarded: Forwarded | None, peer_ip: str, helo: str | None) -> dict[str, str]:
    """The client fields of the filter's ``Incoming``: the peer's, or when the MTA named its
    client, that client's, with the peer kept as the hop it came via. Never a mix of the two
    (README: "The server must not mix client attributes from XFORWARD with client attributes
    from the current SMTP session"): what the MTA did not know stays unknown ("")."""
    if forwarded is None:
        return {"client_ip": peer_ip, "helo": helo or ""}
    return {
        "client_ip": forwarded.addr,
        "helo": forwarded.helo,
        "client_name": forwarded.name,
        "client_proto": forwarded.proto,
        "upstream_id": forwarded.ident,
        "via_ip": peer_ip,
        "via_helo": helo or "",
    }
