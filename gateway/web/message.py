"""One held message: what it is, why it was held, and the decision.

Opening the page is ``Review.show`` and so leaves a "viewed" entry with the signed-in name.
Release, reject and send by secure link take two steps, both POSTs: the first shows exactly
what the sender will be told (the notice ``review.notices`` would queue) and asks for
confirmation; only the second, with ``confirmed=yes``, decides, through ``Review.release`` /
``Review.reject`` / ``Review.send_link``. A linked hold's page lists its links
(``gateway.web.links``).
"""

from __future__ import annotations

import email.parser
import email.policy
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from gateway.audit import events as audit
from gateway.config.values import describe_duration
from gateway.errors import GatewayError, ReviewError
from gateway.review.linknotices import LinkNotices
from gateway.review.messageview import attachment_bytes
from gateway.review.model import decision_text
from gateway.store import AuditQuery, Hold, NewNotice, Status
from gateway.store.links import Link
from gateway.web.auth import guard
from gateway.web.context import Web, render, web_of
from gateway.web.links import link_rows
from gateway.web.security import content_disposition
from gateway.web.sessions import Session
from gateway.web.templating import reason_words

NO_PORTAL = (
    "Sending by secure link needs the portal's address: set [portal] public_url (and enable "
    "the portal) in the gateway's configuration."
)
MAX_TEXT = 5000  # characters of a rationale or reason
TRAIL = 100  # a hold's newest audit entries shown on its page; the rest via /audit?hold=
ACTIONS = ("release", "reject", "link")
# "This message is already ...": a second decision is told what the first one was.
ALREADY = {
    Status.RELEASING: "being released",
    Status.RELEASED: "released",
    Status.REJECTED: "rejected",
    Status.EXPIRED: "expired",
    Status.LINKED: "sent by secure link",
}


@dataclass(frozen=True)
class NoticePreview:
    to: str
    subject: str
    body: str


def preview(notices: list[NewNotice]) -> NoticePreview | None:
    if not notices:
        return None
    parsed = email.parser.BytesParser(policy=email.policy.default).parsebytes(notices[0].message)
    body = parsed.get_body(("plain",))
    text = body.get_content() if body is not None else ""
    return NoticePreview(str(parsed["To"]), str(parsed["Subject"]), str(text).rstrip())


def reasons(hold: Hold) -> list[tuple[str, list[tuple[str, str]]]]:
    """Each held recipient with its reasons, as (code, plain words)."""
    return [
        (r.address, [(code, reason_words(code, r)) for code in r.reasons]) for r in hold.recipients
    ]


def _not_found(request: Request, session: Session, hold_id: str) -> Response:
    return render(
        request,
        session,
        "error.html",
        404,
        title="No such held message",
        message=f"There is no held message with the reference {hold_id!r}.",
    )


@guard()
async def page(request: Request, session: Session) -> Response:
    web = web_of(request)
    hold_id = request.path_params["hold_id"]
    try:
        hold, view = await web.review.show(hold_id, session.user.name)
    except ReviewError:
        return _not_found(request, session, hold_id)
    except GatewayError as exc:  # e.g. the blob cannot be decrypted with this key
        web.log.error("cannot show hold", hold_id=hold_id, **exc.log_fields())
        return render(
            request,
            session,
            "error.html",
            500,
            title="This message cannot be shown",
            message=f"{exc}. Ask whoever runs the gateway to check its store key.",
        )
    entries, total = await web.review.audit_page(AuditQuery(hold_id=hold.id, limit=TRAIL))
    now = web.clock()
    linked = hold.status is Status.LINKED
    links = link_rows(await web.review.links(hold.id), hold, now) if linked else []
    escalate_after = web.settings.review.escalate_after
    return render(
        request,
        session,
        "message.html",
        hold=hold,
        view=view,
        reasons=reasons(hold),
        release_route=web.review.release_route(hold),
        portal_url=web.settings.portal.public_url,
        links=links,
        entries=entries,
        trail_total=total,
        age=now - hold.created_at,
        overdue=hold.status is Status.HELD and now - hold.created_at >= escalate_after,
        expires_at=hold.created_at + web.settings.review.expire_after,
        escalate_after=describe_duration(web.settings.review.escalate_after),
    )


@guard(flash=False)
async def attachment(request: Request, session: Session) -> Response:
    web = web_of(request)
    hold_id, index = request.path_params["hold_id"], request.path_params["index"]
    try:
        hold = await web.review.get(hold_id)
        raw = await web.review.raw_message(hold_id)
    except ReviewError:
        return _not_found(request, session, hold_id)
    found = await web.blocking(lambda: attachment_bytes(raw, index))
    if found is None:
        return render(request, session, "error.html", 404, title="No such attachment", message="")
    info, data = found
    await web.audit(
        [audit.attachment_downloaded(hold, session.user.name, index, len(data), info.filename)]
    )
    web.log.info("attachment downloaded", hold_id=hold.id, user=session.user.name, index=index)
    return Response(
        data,
        media_type="application/octet-stream",  # never the sender's claimed type
        headers={
            "Content-Disposition": content_disposition(info.filename),
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
        },
    )


@guard()
async def release(request: Request, session: Session) -> Response:
    return await _decide(request, session, "release")


@guard()
async def reject(request: Request, session: Session) -> Response:
    return await _decide(request, session, "reject")


@guard()
async def send_link(request: Request, session: Session) -> Response:
    return await _decide(request, session, "link")


async def _decide(request: Request, session: Session, action: str) -> Response:
    web = web_of(request)
    hold_id = request.path_params["hold_id"]
    form = await request.form()
    text = _decision_text(str(form.get("text") or "").replace("\r\n", "\n")[:MAX_TEXT])
    confirmed = form.get("confirmed") == "yes"
    try:
        hold = await web.review.get(hold_id)
    except ReviewError:
        return _not_found(request, session, hold_id)
    back = RedirectResponse(f"/held/{hold.id}", 303)
    refusal = _refusal(web, hold, action)
    if refusal:
        await web.blocking(lambda: web.sessions.flash(session, "error", refusal))
        return back
    if not text or not confirmed:
        return _confirmation(request, session, hold, action, text)
    try:
        done, message = await _apply(web, hold, action, text, session.user.name)
    except ReviewError as exc:
        failed = str(exc)
        await web.blocking(lambda: web.sessions.flash(session, "error", failed))
        return back
    await web.decided()
    kind = "ok" if done else "error"
    await web.blocking(lambda: web.sessions.flash(session, kind, message))
    return back


def _refusal(web: Web, hold: Hold, action: str) -> str:
    """Why this decision cannot be taken at all; "" when it can."""
    if hold.status is not Status.HELD:
        return f"This message is already {ALREADY[hold.status]}: nothing was done."
    if action == "link" and not web.settings.portal.public_url:
        return f"{NO_PORTAL} Nothing was done."
    return ""


def _confirmation(
    request: Request, session: Session, hold: Hold, action: str, text: str
) -> Response:
    """The decision as it will be: who gets what, what the sender is told; or, without a
    text, the form again."""
    web = web_of(request)
    by = session.user.name
    everyone = [r.address for r in hold.recipients]
    recipient: list[NewNotice] = []
    if action == "release":
        notices = web.review.notices.released(hold, by, everyone, {})
    elif action == "reject":
        notices = web.review.notices.rejected(hold, by, text)
    else:
        notices, recipient = _link_previews(web, hold, by)
    lifetime = web.settings.portal.link_lifetime
    return render(
        request,
        session,
        "decide.html",
        200 if text else 400,
        action=action,
        hold=hold,
        text=text,
        notice=preview(notices) if text else None,
        recipient_notice=preview(recipient) if text else None,
        notify_on=web.settings.notify.enabled,
        link_expires=web.clock() + lifetime,
        link_lifetime=describe_duration(lifetime),
    )


def _link_previews(web: Web, hold: Hold, by: str) -> tuple[list[NewNotice], list[NewNotice]]:
    """The sender's notice and the first recipient's link email, as they will be, but with a
    placeholder where each recipient's own link goes (no token is made before the decision)."""
    emails = LinkNotices(
        web.review.notices, web.settings.portal.public_url, web.settings.secure_link.unopened_after
    )
    now = web.clock()
    expires = now + web.settings.portal.link_lifetime
    links = [Link("L…", hold.id, r.address, "", now, by, expires) for r in hold.recipients]
    return emails.linked(hold, by, links), [emails.link(hold, links[0], "…")] if links else []


async def _apply(web: Web, hold: Hold, action: str, text: str, by: str) -> tuple[bool, str]:
    """Take the decision: (done, what the reviewer is told)."""
    if action == "release":
        outcome = await web.review.release(hold.id, text, by)
        done = outcome.done
        return done, _released_text(outcome.delivered, outcome.refused, outcome.error, done)
    if action == "reject":
        await web.review.reject(hold.id, text, by)
        return True, "Rejected: the message will not be sent. The sender is told why."
    _, links = await web.review.send_link(hold.id, text, by)
    return True, (
        "Sent by secure link to "
        + ", ".join(link.recipient for link in links)
        + ". Each is emailed a link, and a one-time code when they open it. The sender is told."
    )


def _decision_text(text: str) -> str:
    """The text as the review model records it; "" (ask again) when it refuses it."""
    try:
        return decision_text(text, "")
    except ReviewError:
        return ""


def _released_text(
    delivered: tuple[str, ...], refused: dict[str, str], error: str, done: bool
) -> str:
    if not done:
        return (
            f"The release is recorded, but delivery is pending ({error}). "
            "The gateway keeps trying; the sender is told once it is sent."
        )
    text = "Released: sent to " + (", ".join(delivered) or "nobody") + "."
    if refused:
        text += " The mail server refused " + ", ".join(refused) + "."
    return text + " The sender is told."
