"""What the portal does, over the store: open a link by its token, send a code, check it,
show the message, hand out an attachment, take a reply. The routes (``portal.app``) only turn
requests into these calls and outcomes into pages.

Every change goes through the store's compare-and-set (``SecureLinks``): two nodes, or two
tabs, acting on one link at once cannot both count an attempt or both send the "opened"
notice. The limits that protect a code are in the store, shared by every node: attempts per
link (``core.securelink.MAX_CODE_ATTEMPTS``), codes per link (``MAX_CODES``, one a minute) and
codes per address (``ADDRESS_CODES`` a day, over all the address's links).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from gateway.audit import linkevents
from gateway.core import securelink
from gateway.core.securelink import CodeCheck, LinkState, Resend
from gateway.portal.content import Shown, shown
from gateway.review import messageview
from gateway.review.messageview import Attachment
from gateway.store import Hold, NewNotice
from gateway.store.links import Link
from gateway.store.protocols import AuditTrail, Holds, NoticeOutbox, SecureLinks

# An address gets at most this many codes a day over all its links: each is an email the
# gateway sends, and whoever holds a forwarded link can ask for one.
ADDRESS_CODES = 20
ADDRESS_WINDOW = 24 * 3600.0
MAX_REPLY = 20_000  # characters of a reply: a note to the sender, not a document
# A compare-and-set is lost only when another request moved the link on (one more attempt, or
# the code used), which happens at most MAX_CODE_ATTEMPTS + 1 times before the link locks.
RETRIES = securelink.MAX_CODE_ATTEMPTS + 2
PEPPER_LABEL = b"gateway secure link code pepper v1"


class PortalStore(Holds, AuditTrail, NoticeOutbox, SecureLinks, Protocol):
    """The parts of the store the portal uses."""


class LinkMails(Protocol):
    """The emails the portal causes (``gateway.review.linknotices.LinkNotices``)."""

    def code(self, link: Link, code: str) -> NewNotice: ...

    def opened(self, hold: Hold, link: Link, at: float) -> list[NewNotice]: ...

    def reply(self, hold: Hold, link: Link, text: str) -> NewNotice: ...


def code_pepper(store_key: bytes) -> bytes:
    """The key of the codes' digests, derived from the store key under a fixed label (HMAC as
    a PRF, as in HKDF's extract step, RFC 5869 §2.2): the same on every node, and a copy of
    the database alone cannot test the 10**8 codes."""
    return hmac.new(store_key, PEPPER_LABEL, hashlib.sha256).digest()


@dataclass(frozen=True)
class Opened:
    """A link found by its token, with its hold and its state now."""

    link: Link
    hold: Hold
    state: LinkState


class CodeSent(StrEnum):
    SENT = "sent"
    TOO_SOON = "too-soon"  # one a minute
    TOO_MANY = "too-many"  # for this link, or for this address today
    CLOSED = "closed"  # the link no longer opens


@dataclass(frozen=True)
class Verified:
    check: CodeCheck | None  # None: the link no longer opens
    attempts_left: int = 0


class Portal:
    def __init__(
        self,
        store: PortalStore,
        mails: LinkMails,
        pepper: bytes,
        wake: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._mails = mails
        self._pepper = pepper
        self._wake = wake  # the outbox sends at once: the recipient is waiting for the code
        self._clock = clock

    def now(self) -> float:
        return self._clock()

    async def open(self, token: str) -> Opened | None:
        """The link of ``token``; None when there is none (or the text cannot be a token)."""
        if not securelink.looks_like_token(token):
            return None
        link = await self._store.link_by_token(securelink.token_digest(token))
        return None if link is None else await self._opened(link)

    async def _opened(self, link: Link) -> Opened | None:
        hold = await self._store.get(link.hold_id)
        if hold is None:
            return None
        purged = hold.purged_at is not None
        return Opened(link, hold, securelink.link_state(link.facts(purged), self._clock()))

    async def send_code(self, opened: Opened, client: str) -> CodeSent:
        if opened.state is not LinkState.ACTIVE:
            return CodeSent.CLOSED
        link, now = opened.link, self._clock()
        allowed = securelink.may_send_code(link.code, now)
        if allowed is Resend.TOO_SOON:
            return CodeSent.TOO_SOON
        if allowed is Resend.TOO_MANY:
            return CodeSent.TOO_MANY
        if await self._store.codes_sent_to(link.recipient, now - ADDRESS_WINDOW) >= ADDRESS_CODES:
            return CodeSent.TOO_MANY
        code = securelink.code_text(secrets.token_bytes(8))
        digest = securelink.code_digest(code, link.id, self._pepper)
        changed = await self._store.link_code_sent(
            link.id,
            link.code.sent,
            digest,
            now,
            now + securelink.CODE_LIFETIME,
            [linkevents.code_sent(link, client)],
            [self._mails.code(link, code)],
        )
        if changed is None:
            return CodeSent.TOO_SOON  # another request sent one just now
        self._wake()
        return CodeSent.SENT

    async def verify(self, opened: Opened, entered: str, client: str) -> Verified:
        """Check an entered code, counting a wrong one; a lost compare-and-set (another
        attempt at the same moment) is checked again against the link as it is now."""
        current: Opened | None = opened
        for _ in range(RETRIES):
            if current is None or current.state is not LinkState.ACTIVE:
                return Verified(None)
            link = current.link
            code = securelink.entered_code(entered)
            digest = securelink.code_digest(code, link.id, self._pepper)
            outcome = securelink.check_code(link.code, digest, self._clock())
            if outcome.check in (CodeCheck.EXPIRED, CodeCheck.NONE_SENT):
                return Verified(outcome.check, outcome.attempts_left)
            failed = outcome.check is not CodeCheck.OK
            locked = outcome.check is CodeCheck.LOCKED
            audit = [linkevents.code_failed(link, client, outcome.attempts, locked)]
            changed = await self._store.link_code_entered(
                link.id, link.code.attempts, outcome, self._clock(), audit if failed else ()
            )
            if changed is not None:
                return Verified(outcome.check, outcome.attempts_left)
            fresh = await self._store.link(link.id)
            current = None if fresh is None else await self._opened(fresh)
        raise RuntimeError("a code check lost more races than a link has attempts")

    async def message(self, opened: Opened, client: str) -> Shown | None:
        """The message for a verified viewer; the first time, the link is opened (and the
        sender told), later views are recorded. None when the body is gone."""
        try:
            raw = await self._store.message(opened.hold.id)
        except KeyError:
            return None
        link, now = opened.link, self._clock()
        first = None
        if link.opened_at is None:
            notices = self._mails.opened(opened.hold, link, now)
            audit = [linkevents.opened(link, client)]
            first = await self._store.link_opened(link.id, now, audit, notices)
        if first is not None:
            self._wake()
        else:
            await self._store.append_audit([linkevents.viewed(link, client)])
        return shown(raw)

    async def attachment(
        self, opened: Opened, index: int, client: str
    ) -> tuple[Attachment, bytes] | None:
        try:
            raw = await self._store.message(opened.hold.id)
        except KeyError:
            return None
        found = messageview.attachment_bytes(raw, index)
        if found is not None:
            info = found[0]
            audit = linkevents.attachment_downloaded(opened.link, client, index, info.filename)
            await self._store.append_audit([audit])
        return found

    async def reply(self, opened: Opened, text: str, client: str) -> bool:
        """Send the recipient's reply to the sender through the outbox; False when there is
        nothing to send or nobody to send it to (a bounce's hold has no sender)."""
        body = text.replace("\r\n", "\n").strip()
        if not body or not opened.hold.sender:
            return False
        notice = self._mails.reply(opened.hold, opened.link, body[:MAX_REPLY])
        audit = linkevents.replied(opened.link, client, len(body), opened.hold.sender)
        await self._store.queue_notices([notice], [audit])
        self._wake()
        return True


def reply_too_long(text: str) -> bool:
    return len(text.replace("\r\n", "\n").strip()) > MAX_REPLY


__all__: Sequence[str] = ("CodeSent", "Opened", "Portal", "Verified", "code_pepper")
