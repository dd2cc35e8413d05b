"""Envelope addresses at the SMTP face: the reverse- and forward-paths of MAIL and RCPT.

The syntax of a mailbox (RFC 5321 §4.1.2) is email-validator's, not a parser of our own: it
refuses control characters and NUL, a second ``@`` outside quotes, an unterminated quote, a
quoted-pair that swallows the ``@`` and text after a quoted string. The domain is the core's
(``normalise_domain``): email-validator refuses special-use names such as ``.local`` and
``.test`` whatever its options, and an organisation's own mail may well live under one. So the
local part is checked against a stand-in domain, and the real domain by the core.

Each refusal carries the reply a client should act on: a syntax error (553 5.1.7 or 5.1.3), a
non-ASCII address without SMTPUTF8 (553 5.6.7, RFC 6531 §3.4) and an address literal (a policy
refusal, 550 5.7.1: the gateway relays only to names whose security it can look up).

The outcome is a pure function of the text, and the same senders and recipients recur all
day, so it is remembered for the most recent few thousand paths (an LRU: a client sending a
stream of new addresses only pushes older ones out) rather than parsed again each time.
"""

from __future__ import annotations

from functools import lru_cache

from email_validator import EmailNotValidError, validate_email

from gateway.core.addresses import AddressError, normalise_domain
from gateway.smtp.reply import SmtpReply

BAD_SENDER = SmtpReply(553, "5.1.7", "Bad sender address syntax")
BAD_RECIPIENT = SmtpReply(553, "5.1.3", "Bad recipient address syntax")
# RFC 6531 §3.4 (with RFC 6533's 5.6.7): a non-ASCII path needs SMTPUTF8 on MAIL.
NON_ASCII_SENDER = SmtpReply(
    553, "5.6.7", "Non-ASCII addresses not permitted for that sender without SMTPUTF8"
)
NON_ASCII_RECIPIENT = SmtpReply(
    553, "5.6.7", "Non-ASCII addresses not permitted for that recipient without SMTPUTF8"
)
ADDRESS_LITERAL = SmtpReply(550, "5.7.1", "Address literals are not accepted here")

# RFC 2606 reserves example.com; email-validator accepts it without DNS.
_STAND_IN = "example.com"


def strip_route(path: str) -> str:
    """The mailbox of a path: a source route (``@a,@b:user@c``) is ignored, as RFC 5321
    §4.1.1.3 asks of servers (and §C calls it obsolete)."""
    if path.startswith("@") and ":" in path:
        return path.split(":", 1)[1]
    return path


def is_postmaster(path: str) -> bool:
    """``<Postmaster>`` without a domain, which RFC 5321 §4.5.1 says MUST be accepted
    (the name is case-insensitive, §4.1.1.3)."""
    return path.lower() == "postmaster"


# Paths remembered; each key is at most a command line (aiosmtpd's limit), so a few MB at most.
MEMO_SIZE = 4096


def refusal(mailbox: str, *, smtputf8: bool, sender: bool) -> SmtpReply | None:
    """Why ``mailbox`` (a path's mailbox, without angle brackets) cannot be taken, or None."""
    return _memo(mailbox, smtputf8, sender)


def parse_refusal(mailbox: str, smtputf8: bool, sender: bool) -> SmtpReply | None:
    """``refusal`` worked out afresh, without the memo."""
    syntax = BAD_SENDER if sender else BAD_RECIPIENT
    if not mailbox.isascii() and not smtputf8:
        return NON_ASCII_SENDER if sender else NON_ASCII_RECIPIENT
    local, at, domain = mailbox.rpartition("@")
    # A domain never holds an "@" (nor does an address literal), so the last one splits.
    if not at or not local or not domain or domain != domain.strip():
        return syntax
    if not _valid(f"{local}@{_STAND_IN}"):
        return syntax
    if domain.startswith("["):
        return ADDRESS_LITERAL if _valid(mailbox, literal=True) else syntax
    try:
        normalise_domain(domain)
    except AddressError:
        return syntax
    return None


_memo = lru_cache(maxsize=MEMO_SIZE)(parse_refusal)


def _valid(address: str, *, literal: bool = False) -> bool:
    try:
        validate_email(
            address,
            allow_smtputf8=True,  # whether it is allowed is decided above, with its own reply
            allow_quoted_local=True,
            allow_domain_literal=literal,
            allow_display_name=False,
            check_deliverability=False,  # syntax only: never DNS
        )
    except EmailNotValidError:
        return False
    return True
