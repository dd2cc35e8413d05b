"""The portal as a Starlette app: its routes, headers, limits and error pages. Nothing of the
reviewer UI is served here: any other path is a 404.

    GET  /m/{token}          who sent it; "Email me a code"; the code form once one is sent
    POST /m/{token}/code     send a code to the link's address (throttled)
    POST /m/{token}/verify   check the code; a signed cookie for this link (``viewer``)
    GET  /m/{token}/view     the message, its attachments, a reply form (after the code)
    GET  /m/{token}/a/{n}    download an attachment (after the code)
    POST /m/{token}/reply    a reply to the sender, through the gateway (after the code)
    GET  /healthz            "ok"
    GET  /static/portal.css  the stylesheet
"""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway import logs
from gateway.portal import pages
from gateway.portal.state import PortalApp
from gateway.web.security import BodyLimit

HERE = Path(__file__).parent

# No script source at all; styles and images from the portal only; forms post back here; no
# framing of the portal, no <base> rewriting (OWASP Secure Headers, CSP Level 3).
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # The token is in the path: no page may tell another site where it came from.
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), interest-cohort=()",
    "Cache-Control": "no-store",
}
HSTS = "max-age=31536000"  # RFC 6797: once seen over HTTPS, never over plain HTTP again
MAX_BODY = 256 * 1024  # the largest form: a reply of MAX_REPLY characters, URL-encoded


class Headers:
    """The headers above on every response, and HSTS over HTTPS."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        https = scope.get("scheme") == "https"

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    headers[name] = value
                if https:
                    headers["Strict-Transport-Security"] = HSTS
            await send(message)

        await self.app(scope, receive, with_headers)


def routes() -> list[Route | Mount]:
    post = ["POST"]
    return [
        Route("/m/{token}", pages.start, methods=["GET"]),
        Route("/m/{token}/code", pages.send_code, methods=post),
        Route("/m/{token}/verify", pages.verify, methods=post),
        Route("/m/{token}/view", pages.view, methods=["GET"]),
        Route("/m/{token}/a/{index:int}", pages.attachment, methods=["GET"]),
        Route("/m/{token}/reply", pages.reply, methods=post),
        Route("/healthz", pages.healthz, methods=["GET"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]


def create_app(state: PortalApp) -> Starlette:
    app = Starlette(
        routes=routes(),
        middleware=[Middleware(Headers), Middleware(BodyLimit, limit=MAX_BODY)],
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
    )
    app.state.portal = state
    return app


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    state = request.app.state.portal
    assert isinstance(state, PortalApp)
    page = state.templates.get_template("notfound.html").render(
        organisation=state.organisation, refused=exc.status_code != 404
    )
    return HTMLResponse(page, status_code=exc.status_code)


async def _server_error(request: Request, exc: Exception) -> Response:
    # Sent by Starlette's outermost middleware, outside Headers: add them here. The path is
    # not logged: it holds the token.
    logs.get("gateway.portal").error("portal request failed", error=type(exc).__name__)
    body = (
        "<!doctype html><title>Something went wrong</title>"
        "<p>Something went wrong on our side; nothing more was done. Try again in a few "
        "minutes.</p>"
    )
    return HTMLResponse(body, status_code=500, headers=HEADERS)
