"""A linked hold's secure links on its page, and the reviewer's one action on them: revoke.

The state of a link is the recipient's side of it in a reviewer's words: whether a code was
asked for, how often, when it was first opened, or why it no longer opens (the order of
``core.securelink.link_state``). Revoking takes a reason, kept in the audit trail; the
recipient is not emailed, and the portal tells whoever opens the link that it was withdrawn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from gateway.core.securelink import LinkState, link_state
from gateway.errors import ReviewError
from gateway.store import Hold
from gateway.store.links import Link
from gateway.web.auth import guard
from gateway.web.context import web_of
from gateway.web.sessions import Session
from gateway.web.templating import when

MAX_REASON = 5000  # characters, as a rationale


@dataclass(frozen=True)
class LinkRow:
    link: Link
    state: LinkState
    words: str  # what happened to it, for the page
    active: bool  # it still opens: it can be revoked


def link_rows(links: Sequence[Link], hold: Hold, now: float) -> list[LinkRow]:
    purged = hold.purged_at is not None
    return [_row(link, link_state(link.facts(purged), now)) for link in links]


def _row(link: Link, state: LinkState) -> LinkRow:
    if state is LinkState.ACTIVE:
        return LinkRow(link, state, _progress(link), True)
    why = {
        LinkState.EXPIRED: f"Expired on {when(link.expires_at)}",
        LinkState.REVOKED: f"Revoked by {link.revoked_by or 'a reviewer'} on "
        f"{when(link.revoked_at)}",
        LinkState.LOCKED: f"Locked on {when(link.locked_at)} after too many wrong codes",
        LinkState.PURGED: "The message was deleted after the retention period",
    }[state]
    if link.opened_at is not None:
        why += f" (opened on {when(link.opened_at)})"
    return LinkRow(link, state, why, False)


def _progress(link: Link) -> str:
    if link.opened_at is not None:
        return f"Opened on {when(link.opened_at)}"
    sent = link.code.sent
    if sent == 0:
        return "Not opened yet: no code asked for"
    times = "once" if sent == 1 else f"{sent} times"
    return f"Not opened yet: code sent {times}, last on {when(link.code.sent_at)}"


@guard()
async def revoke(request: Request, session: Session) -> Response:
    web = web_of(request)
    hold_id, link_id = request.path_params["hold_id"], request.path_params["link_id"]
    form = await request.form()
    reason = str(form.get("text") or "").replace("\r\n", "\n").strip()[:MAX_REASON]
    back = RedirectResponse(f"/held/{hold_id}#links", 303)
    try:
        links = await web.review.links(hold_id)
        if link_id not in {link.id for link in links}:
            raise ReviewError(f"this message has no link {link_id}")
        if not reason:
            raise ReviewError("revoking a link needs a reason: it is kept in the audit trail")
        link = await web.review.revoke_link(link_id, reason, session.user.name)
    except ReviewError as exc:
        refusal = _sentence(str(exc))
        await web.blocking(lambda: web.sessions.flash(session, "error", refusal))
        return back
    done = f"Revoked the link to {link.recipient}: it no longer opens the message."
    await web.blocking(lambda: web.sessions.flash(session, "ok", done))
    return back


def _sentence(text: str) -> str:
    text = text[:1].upper() + text[1:]
    return text if text.endswith(".") else text + "."
