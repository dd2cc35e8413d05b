"""The review web UI as a Starlette app: the routes, the middleware, the error pages.

A second face of ``gateway.review``, never a second implementation: every decision goes
through the same ``Review`` the command line uses, with the signed-in name as ``by``.

    GET  /signin                      sign-in form              (open)
    POST /signin                      sign in                   (open; throttled)
    POST /signout                     sign out
    GET  /                            dashboard: counts, the oldest holds
    GET  /held                        the queue: filter and sort
    GET  /held/{id}                   one message (records "viewed")
    GET  /held/{id}/attachments/{n}   download an attachment (audited)
    POST /held/{id}/release           rationale -> confirmation -> release
    POST /held/{id}/reject            reason -> confirmation -> reject
    POST /held/{id}/send-link         rationale -> confirmation -> send by secure link
    POST /held/{id}/links/{link}/revoke   revoke one secure link (with a reason)
    GET  /audit                       the audit trail, searchable
    GET  /tracking                    find flagged mail by sender, recipient, Message-ID
    GET  /tracking/{id}               one message's path, as `gateway trace` prints it
    GET  /allowlist                   the allowlist with each domain's live posture
    GET  /allowlist/check?domain=D    one domain's `gateway check` report
    GET  /account, POST /account/password               your own password
    GET  /admin/users, POST /admin/users                accounts (admins only)
    POST /admin/users/{name}/disable|enable|password    (admins only)
    GET  /healthz                     "ok"                      (open)
    GET  /metrics                     Prometheus text format    (session or bearer token)
    GET  /static/...                  the stylesheet and icon   (open: no data in them)
"""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from gateway.web import admin, allowlist, auth, links, message, ops, queue, tracking, trail
from gateway.web.context import Web
from gateway.web.security import HEADERS, BodyLimit, SecurityHeaders

STATIC = Path(__file__).parent / "static"


def routes() -> list[Route | Mount]:
    post = ["POST"]
    return [
        Route("/signin", auth.signin_form, methods=["GET"]),
        Route("/signin", auth.signin, methods=post),
        Route("/signout", auth.signout, methods=post),
        Route("/", queue.dashboard, methods=["GET"]),
        Route("/held", queue.queue, methods=["GET"]),
        Route("/held/{hold_id}", message.page, methods=["GET"]),
        Route("/held/{hold_id}/attachments/{index:int}", message.attachment, methods=["GET"]),
        Route("/held/{hold_id}/release", message.release, methods=post),
        Route("/held/{hold_id}/reject", message.reject, methods=post),
        Route("/held/{hold_id}/send-link", message.send_link, methods=post),
        Route("/held/{hold_id}/links/{link_id}/revoke", links.revoke, methods=post),
        Route("/audit", trail.trail, methods=["GET"]),
        Route("/tracking", tracking.search, methods=["GET"]),
        Route("/tracking/{ident}", tracking.message, methods=["GET"]),
        Route("/allowlist", allowlist.page, methods=["GET"]),
        Route("/allowlist/check", allowlist.check, methods=["GET"]),
        Route("/account", admin.account, methods=["GET"]),
        Route("/account/password", admin.change_own_password, methods=post),
        Route("/admin/users", admin.users, methods=["GET"]),
        Route("/admin/users", admin.add_user, methods=post),
        Route("/admin/users/{name}/disable", admin.disable, methods=post),
        Route("/admin/users/{name}/enable", admin.enable, methods=post),
        Route("/admin/users/{name}/password", admin.set_password, methods=post),
        Route("/healthz", ops.healthz, methods=["GET"]),
        Route("/metrics", ops.metrics_page, methods=["GET"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]


def create_app(web: Web) -> Starlette:
    app = Starlette(
        routes=routes(),
        middleware=[Middleware(SecurityHeaders), Middleware(BodyLimit)],
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
    )
    app.state.web = web
    return app


_TITLES = {404: "Page not found", 405: "Not allowed here"}


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    web = request.app.state.web
    assert isinstance(web, Web)
    page = web.templates.get_template("error.html").render(
        request=request,
        session=None,
        user=None,
        csrf="",
        flash=None,
        path=request.url.path,
        title=_TITLES.get(exc.status_code, "Request refused"),
        message="",
    )
    return HTMLResponse(page, status_code=exc.status_code)


async def _server_error(request: Request, exc: Exception) -> Response:
    # Sent by Starlette's outermost middleware, outside SecurityHeaders: add them here.
    web = request.app.state.web
    assert isinstance(web, Web)
    web.log.error("web request failed", path=request.url.path, error=type(exc).__name__)
    body = (
        "<!doctype html><title>Something went wrong</title>"
        "<p>Something went wrong on the gateway; nothing more was done. Try again, and tell "
        "whoever runs it if this keeps happening.</p>"
    )
    return HTMLResponse(body, status_code=500, headers={**HEADERS, "Cache-Control": "no-store"})
