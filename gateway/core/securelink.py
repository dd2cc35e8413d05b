"""The rules of a secure link: how a recipient who is not reached over secure email proves their
address before the gateway shows them a held message.

A link is a bearer token in an email to the recipient; alone it opens nothing. Opening it asks
for a one-time code that the gateway sends in a second email to the same address, so a
forwarded link, or one read over a shoulder, is useless without the mailbox. The store keeps
only digests: a copy of the database gives neither the tokens nor the codes.

Randomness and the clock are passed in (the callers use ``secrets.token_bytes`` and the
store's clock), so that every rule here is a plain function of its inputs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from enum import StrEnum

# 256 bits: far beyond guessing, and the same size as the digest kept of it.
TOKEN_BYTES = 32
# Eight digits: with five attempts, one chance in twenty million of guessing a code.
CODE_DIGITS = 8
CODE_LIFETIME = 10 * 60.0
MAX_CODE_ATTEMPTS = 5
# A new code at most once a minute, and at most this many per link: each one is an email to
# the recipient, which someone holding a forwarded link could otherwise make the gateway send.
RESEND_INTERVAL = 60.0
MAX_CODES = 10
# A verified viewer stays verified this long (on this device) before the code is asked again.
VIEW_LIFETIME = 30 * 60.0


def token_text(raw: bytes) -> str:
    """The token as it goes into the link: URL-safe base64 without padding."""
    if len(raw) < TOKEN_BYTES:
        raise ValueError(f"a link token needs {TOKEN_BYTES} random bytes")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def token_digest(token: str) -> str:
    """What the store keeps of a token. A plain hash suffices: the token has 256 bits."""
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def looks_like_token(text: str) -> bool:
    """A cheap check before any lookup: the length and alphabet of ``token_text``."""
    alphabet = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    return len(text) == 43 and set(text) <= alphabet


def code_text(raw: bytes) -> str:
    """A code of CODE_DIGITS decimal digits from at least 8 random bytes (uniform enough: the
    bias of a 64-bit value modulo 10**8 is below 10**-10)."""
    if len(raw) < 8:
        raise ValueError("a code needs 8 random bytes")
    return str(int.from_bytes(raw[:8], "big") % 10**CODE_DIGITS).zfill(CODE_DIGITS)


def entered_code(text: str) -> str:
    """What a person typed, as a code: spaces and dashes dropped (the email groups the
    digits), anything else left for the comparison to refuse."""
    return "".join(ch for ch in text if ch not in " -\u00a0\t")[: CODE_DIGITS * 2]


def shown_code(code: str) -> str:
    """The code as the email shows it: two groups, easy to read out and type."""
    half = len(code) // 2
    return f"{code[:half]} {code[half:]}"


def code_digest(code: str, link_id: str, pepper: bytes) -> str:
    """What the store keeps of a code: keyed, so that eight digits cannot be reversed from a
    copy of the database by trying all 10**8 of them without the key."""
    message = f"{link_id}\x00{code}".encode("utf-8", "surrogateescape")
    return hmac.new(pepper, message, hashlib.sha256).hexdigest()


class LinkState(StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"
    LOCKED = "locked"  # too many wrong codes: a reviewer must send a new link
    PURGED = "purged"  # the held message is gone (retention)


@dataclass(frozen=True)
class LinkFacts:
    """What the rules need to know about one link."""

    expires_at: float
    revoked_at: float | None = None
    locked_at: float | None = None
    purged: bool = False


def link_state(link: LinkFacts, now: float) -> LinkState:
    """The first reason a link no longer opens, in the order a recipient is told about it."""
    if link.purged:
        return LinkState.PURGED
    if link.revoked_at is not None:
        return LinkState.REVOKED
    if link.locked_at is not None:
        return LinkState.LOCKED
    if now >= link.expires_at:
        return LinkState.EXPIRED
    return LinkState.ACTIVE


@dataclass(frozen=True)
class CodeFacts:
    """The link's current code, as the store keeps it."""

    digest: str = ""  # empty: no code sent yet
    expires_at: float = 0.0
    attempts: int = 0  # wrong codes entered against this link, all codes counted
    sent: int = 0  # codes sent for this link
    sent_at: float | None = None


class Resend(StrEnum):
    OK = "ok"
    TOO_SOON = "too-soon"
    TOO_MANY = "too-many"


def may_send_code(code: CodeFacts, now: float) -> Resend:
    if code.sent >= MAX_CODES:
        return Resend.TOO_MANY
    if code.sent_at is not None and now < code.sent_at + RESEND_INTERVAL:
        return Resend.TOO_SOON
    return Resend.OK


class CodeCheck(StrEnum):
    OK = "ok"
    WRONG = "wrong"  # counts as an attempt
    EXPIRED = "expired"  # the code was right once; ask for a new one (no attempt counted)
    NONE_SENT = "none-sent"
    LOCKED = "locked"  # this attempt was the last one allowed


@dataclass(frozen=True)
class CodeOutcome:
    check: CodeCheck
    attempts: int  # the link's wrong attempts after this one

    @property
    def attempts_left(self) -> int:
        return max(0, MAX_CODE_ATTEMPTS - self.attempts)


def check_code(code: CodeFacts, digest: str, now: float) -> CodeOutcome:
    """The outcome of entering a code whose digest is ``digest``. Compared in constant time.
    An expired code that is right is not an attempt: the recipient was slow, not guessing;
    a wrong one counts whether or not the current code has expired."""
    if not code.digest:
        return CodeOutcome(CodeCheck.NONE_SENT, code.attempts)
    right = hmac.compare_digest(code.digest, digest)
    if right and now < code.expires_at:
        return CodeOutcome(CodeCheck.OK, code.attempts)
    if right:
        return CodeOutcome(CodeCheck.EXPIRED, code.attempts)
    attempts = code.attempts + 1
    if attempts >= MAX_CODE_ATTEMPTS:
        return CodeOutcome(CodeCheck.LOCKED, attempts)
    return CodeOutcome(CodeCheck.WRONG, attempts)
