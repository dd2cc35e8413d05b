"""Sending a hold by secure link: the reviewer's third decision, besides release and reject
(``Review.send_link``), the gateway's own for ``[secure_link] automatic_for`` (the filter),
revoking a link, and the sweep's notice of links nobody opened.

The decision and its links are one compare-and-set on the hold (``changes.SendLinks``), with
the link emails, the sender's notice and the audit entry in the same transaction: a second
decision finds the hold decided, and no link is ever sent for a hold that was not. Each link's
token is made here from ``secrets`` and leaves this module only inside the recipient's email:
the store keeps its digest, and neither the log nor the audit trail ever sees it.
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Callable, Sequence

from gateway import logs, metrics
from gateway.audit import linkevents
from gateway.audit.events import GATEWAY
from gateway.config.settings import Settings
from gateway.core.securelink import (
    TOKEN_BYTES,
    LinkState,
    link_state,
    token_digest,
    token_text,
)
from gateway.errors import ReviewError
from gateway.review.linknotices import LinkNotices
from gateway.review.notices import Notices
from gateway.store import HeldRecipient, Hold, HoldStore, NewNotice, Status
from gateway.store.changes import SendLinks
from gateway.store.links import Link, NewLink

HELD_ONLY = frozenset({Status.HELD})
NO_PORTAL = "sending by secure link needs [portal] public_url: the address recipients open links at"


def new_link_id() -> str:
    """``L`` and ten base32 characters (50 bits): short enough to read out to a colleague,
    never guessed by chance among a hold's few links. Not a secret: the token is."""
    return "L" + base64.b32encode(secrets.token_bytes(7)).decode("ascii")[:10]


def automatic_reasons(
    recipients: Sequence[HeldRecipient], automatic_for: frozenset[str]
) -> list[str] | None:
    """The reasons for which the gateway sends these held recipients by secure link itself:
    only when every reason of every one of them is in ``[secure_link] automatic_for``; None
    otherwise. A hold with one recipient left out waits for a reviewer as a whole: one
    decision per hold, and a reviewer looking at it must see every recipient still waiting."""
    reasons = list(dict.fromkeys(r for rcpt in recipients for r in rcpt.reasons))
    if not automatic_for or not recipients or not reasons:
        return None
    if not all(rcpt.reasons and set(rcpt.reasons) <= automatic_for for rcpt in recipients):
        return None
    return reasons


def state_of(link: Link, hold: Hold, now: float) -> LinkState:
    """The link's state as the portal would answer it now (purged: the body is gone)."""
    return link_state(link.facts(hold.purged_at is not None), now)


class SecureLinking:
    """Makes, revokes and follows up secure links; shared by ``Review`` and the filter."""

    def __init__(
        self,
        settings: Settings,
        store: HoldStore,
        notices: Notices,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._clock = clock
        self._portal_url = settings.portal.public_url
        self._lifetime = settings.portal.link_lifetime
        self._unopened_after = settings.secure_link.unopened_after
        self.automatic_for = frozenset(settings.secure_link.automatic_for)
        self.notices = LinkNotices(notices, self._portal_url, self._unopened_after)
        self._log = logs.get("gateway.review")

    async def send(
        self, hold: Hold, rationale: str, by: str, automatic: bool = False
    ) -> tuple[Hold, list[Link]]:
        """Decide ``hold`` (still HELD) by secure link, one link per held recipient; the
        decided hold and its links. ``rationale`` and ``by`` are already checked."""
        if not self._portal_url:
            raise ReviewError(NO_PORTAL)
        if hold.status is not Status.HELD:
            raise ReviewError(
                f"{hold.id} is {hold.status.value}; only held messages are sent by secure link"
            )
        now = self._clock()
        tokens = [token_text(secrets.token_bytes(TOKEN_BYTES)) for _ in hold.recipients]
        new = tuple(
            NewLink(new_link_id(), r.address, token_digest(token), now + self._lifetime)
            for r, token in zip(hold.recipients, tokens, strict=True)
        )
        # The links as the store will keep them, for the emails built in the same transaction.
        links = [
            Link(n.id, hold.id, n.recipient, n.token_digest, now, by, n.expires_at) for n in new
        ]
        notices = [
            self.notices.link(hold, link, token) for link, token in zip(links, tokens, strict=True)
        ]
        notices += self.notices.linked(hold, by, links, automatic)
        if automatic:
            notices += self.notices.linked_reviewers(hold, links)
        pairs = [(link.id, link.recipient) for link in links]
        changed = await self._store.update(
            hold.id,
            HELD_ONLY,
            SendLinks(now, by, rationale, new),
            audit=[linkevents.links_sent(hold, by, rationale, pairs, automatic)],
            notices=notices,
        )
        if changed is None:
            raise ReviewError(f"{hold.id} was decided by someone else meanwhile")
        metrics.DECISIONS.labels("linked").inc()
        self._log.info(
            "sent by secure link",
            hold_id=hold.id,
            by=by,
            links=[link_id for link_id, _ in pairs],
            automatic=automatic,
        )
        return changed, list(await self._store.links_of(hold.id))

    async def send_automatically(
        self, hold: Hold, reasons: Sequence[str], instead: Sequence[NewNotice]
    ) -> bool:
        """``[secure_link] automatic_for``: send a new hold by secure link at once, by the
        gateway. The hold is already durable; should this fail, it stays held for a reviewer,
        and ``instead`` (the held notices, left out of the hold for this) are queued so that
        the sender and reviewers still hear of it. True when the links went."""
        rationale = "automatic: " + ", ".join(reasons)
        try:
            await self.send(hold, rationale, GATEWAY, automatic=True)
        except Exception:
            self._log.exception("automatic secure link failed; left for review", hold_id=hold.id)
            try:
                await self._store.queue_notices(instead)
            except Exception:  # the sweep's escalation still tells the reviewers
                self._log.exception("held notices not queued", hold_id=hold.id)
            return False
        return True

    async def revoke(self, link_id: str, reason: str, by: str) -> Link:
        """Revoke one link: the portal then says so. The recipient is not emailed (the
        reviewer tells them, if they should know)."""
        link = await self._store.link(link_id)
        if link is None:
            raise ReviewError(f"no secure link {link_id!r}")
        if link.revoked_at is not None:
            raise ReviewError(f"{link_id} was revoked already, by {link.revoked_by}")
        revoked = await self._store.revoke_link(
            link_id, self._clock(), by, audit=[linkevents.revoked(link, by, reason)]
        )
        if revoked is None:
            raise ReviewError(f"{link_id} was revoked by someone else meanwhile")
        self._log.info("secure link revoked", hold_id=link.hold_id, link=link_id, by=by)
        return revoked

    async def sweep_unopened(self) -> list[str]:
        """Tell the sender and the reviewers, once per link, that nobody opened a link within
        ``[secure_link] unopened_after``; the ids of the links told about."""
        now = self._clock()
        told_about = []
        for link in await self._store.unopened_links(now - self._unopened_after):
            hold = await self._store.get(link.hold_id)
            if hold is None:
                continue
            notices = self.notices.unopened(hold, link, now - link.created_at)
            told = [address for notice in notices for address in notice.recipients]
            changed = await self._store.link_unopened_noticed(
                link.id,
                now,
                audit=[linkevents.unopened(link, now - link.created_at, told)],
                notices=notices,
            )
            if changed is not None:
                told_about.append(link.id)
        return told_about
