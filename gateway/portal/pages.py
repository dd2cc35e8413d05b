"""The portal's page handlers: each finds the link, checks what the request must prove (the
form's token; after the code, the viewer's cookie), calls ``portal.service`` and renders.

A path that names no link, or a token that is not one, is a 404 like any unknown path; a link
that no longer opens says why (410) and whom to ask: the sender."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from gateway.core.securelink import CODE_LIFETIME, VIEW_LIFETIME, CodeCheck, LinkState
from gateway.portal.service import MAX_REPLY, CodeSent, Opened, reply_too_long
from gateway.portal.state import PortalApp
from gateway.portal.viewer import COOKIE, Viewer
from gateway.web.security import content_disposition, same_origin

CLOSED_STATUS = {
    LinkState.EXPIRED: 410,
    LinkState.REVOKED: 410,
    LinkState.LOCKED: 410,
    LinkState.PURGED: 410,
}
SENT_WORDS = {
    CodeSent.SENT: "We have emailed you a code. It is valid for 10 minutes.",
    CodeSent.TOO_SOON: "A code was sent less than a minute ago: check your inbox (and spam "
    "folder) before asking for another.",
    CodeSent.TOO_MANY: "Too many codes have been sent for this message. Use the last one you "
    "received, or ask the sender to send the message again.",
}
CHECK_WORDS = {
    CodeCheck.WRONG: "That code is not right.",
    CodeCheck.EXPIRED: "That code has expired. Ask for a new one below.",
    CodeCheck.NONE_SENT: "Ask for a code first.",
}


def _app(request: Request) -> PortalApp:
    state = request.app.state.portal
    assert isinstance(state, PortalApp)
    return state


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    app = _app(request)
    page = app.templates.get_template(template).render(organisation=app.organisation, **context)
    return HTMLResponse(page, status_code=status)


def _too_many(request: Request) -> HTMLResponse:
    return _render(request, "busy.html", 429)


async def _link(request: Request) -> Opened | Response:
    """The link of the path's token, or the page that answers instead."""
    if not _app(request).limits.request(_client(request)):
        return _too_many(request)
    opened = await _app(request).portal.open(request.path_params["token"])
    if opened is None:
        return _render(request, "notfound.html", 404, refused=False)
    if opened.state is not LinkState.ACTIVE:
        return _render(request, "closed.html", CLOSED_STATUS[opened.state], opened=opened)
    return opened


def _viewer(request: Request, opened: Opened) -> Viewer | None:
    signer = _app(request).signer
    return signer.viewer(request.cookies.get(COOKIE), opened.link.id, _app(request).portal.now())


async def _form(request: Request, opened: Opened, viewer: Viewer | None) -> dict[str, str] | None:
    """The posted form when its token is this link's (and viewer's), and it came from here."""
    scheme = request.url.scheme
    if not same_origin(request.headers.get("origin"), request.headers.get("host"), scheme):
        return None
    form = await request.form()
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    if not _app(request).signer.form_ok(fields.get("csrf", ""), opened.link.id, viewer):
        return None
    return fields


def _start_page(
    request: Request, opened: Opened, status: int = 200, notice: str = "", error: str = ""
) -> HTMLResponse:
    code = opened.link.code
    asked = bool(code.digest) and code.expires_at > _app(request).portal.now()
    return _render(
        request,
        "start.html",
        status,
        opened=opened,
        token=request.path_params["token"],
        csrf=_app(request).signer.form_token(opened.link.id),
        asked=asked or bool(notice),  # a code was sent, now or a moment ago
        notice=notice,
        error=error,
        minutes=int(CODE_LIFETIME // 60),
    )


def _refused(request: Request) -> HTMLResponse:
    return _render(request, "refused.html", 403, token=request.path_params["token"])


async def start(request: Request) -> Response:
    opened = await _link(request)
    if isinstance(opened, Response):
        return opened
    return _start_page(request, opened)


async def send_code(request: Request) -> Response:
    opened = await _link(request)
    if isinstance(opened, Response):
        return opened
    if await _form(request, opened, None) is None:
        return _refused(request)
    if not _app(request).limits.form(opened.link.token_digest):
        return _too_many(request)
    sent = await _app(request).portal.send_code(opened, _client(request))
    if sent is CodeSent.CLOSED:
        return _render(request, "closed.html", 410, opened=opened)
    fresh = await _app(request).portal.open(request.path_params["token"])
    return _start_page(request, fresh or opened, notice=SENT_WORDS[sent])


async def verify(request: Request) -> Response:
    opened = await _link(request)
    if isinstance(opened, Response):
        return opened
    fields = await _form(request, opened, None)
    if fields is None:
        return _refused(request)
    if not _app(request).limits.form(opened.link.token_digest):
        return _too_many(request)
    portal = _app(request).portal
    checked = await portal.verify(opened, fields.get("code", ""), _client(request))
    if checked.check is None or checked.check is CodeCheck.LOCKED:
        fresh = await portal.open(request.path_params["token"])
        return _render(request, "closed.html", 410, opened=fresh or opened)
    if checked.check is not CodeCheck.OK:
        error = CHECK_WORDS[checked.check]
        if checked.check is CodeCheck.WRONG:
            left = checked.attempts_left
            error += f" {left} {'attempt' if left == 1 else 'attempts'} left."
        fresh = await portal.open(request.path_params["token"]) or opened
        return _start_page(request, fresh, 400, error=error)
    _viewer_value, cookie = _app(request).signer.new_viewer(opened.link.id, portal.now())
    response = RedirectResponse(f"/m/{request.path_params['token']}/view", status_code=303)
    response.set_cookie(
        COOKIE,
        cookie,
        max_age=int(VIEW_LIFETIME),
        path=f"/m/{request.path_params['token']}",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
    return response


async def view(request: Request, notice: str = "", error: str = "") -> Response:
    opened = await _link(request)
    if isinstance(opened, Response):
        return opened
    viewer = _viewer(request, opened)
    if viewer is None:
        return RedirectResponse(f"/m/{request.path_params['token']}", status_code=303)
    shown = await _app(request).portal.message(opened, _client(request))
    if shown is None:
        return _render(request, "closed.html", 410, opened=opened, gone=True)
    return _render(
        request,
        "view.html",
        400 if error else 200,
        opened=opened,
        shown=shown,
        token=request.path_params["token"],
        csrf=_app(request).signer.form_token(opened.link.id, viewer),
        notice=notice,
        error=error,
        max_reply=MAX_REPLY,
    )


async def attachment(request: Request) -> Response:
    opened = await _link(request)
    if isinstance(opened, Response):
        return opened
    if _viewer(request, opened) is None:
        return _refused(request)
    index = request.path_params["index"]
    found = await _app(request).portal.attachment(opened, index, _client(request))
    if found is None:
        return _render(request, "notfound.html", 404, refused=False)
    info, data = found
    headers = {"Content-Disposition": content_disposition(info.filename)}
    # Always bytes to save, never a page to render: nosniff (set for every response) makes
    # the browser believe this type (RFC 6266 §4, WHATWG Fetch).
    return Response(data, media_type="application/octet-stream", headers=headers)


async def reply(request: Request) -> Response:
    opened = await _link(request)
    if isinstance(opened, Response):
        return opened
    viewer = _viewer(request, opened)
    if viewer is None:
        return _refused(request)
    fields = await _form(request, opened, viewer)
    if fields is None:
        return _refused(request)
    if not _app(request).limits.form(opened.link.token_digest):
        return _too_many(request)
    text = fields.get("text", "")
    if reply_too_long(text):
        return await view(request, error=f"A reply can be at most {MAX_REPLY} characters.")
    if not await _app(request).portal.reply(opened, text, _client(request)):
        return await view(request, error="Write your reply first.")
    return await view(request, notice="Your reply has been sent to the sender.")


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok\n")
