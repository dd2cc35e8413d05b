"""Signing in and out, and the guard every page but sign-in and /healthz goes through.

The guard: no live session, and the browser is sent to sign in (and back afterwards); a
reviewer on an admin page gets 403; a POST must carry the session's CSRF token (compared in
constant time) and, when the browser names one, come from this site's origin.

Sign-in is throttled per account name and per client address (``gateway.accounts.users
.Throttle``): an attempt is counted before its password is checked, and while a wait is due the
password is not even checked. Every outcome is logged and audited.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from gateway.accounts.users import Role, User, throttle_keys
from gateway.audit import events as audit
from gateway.web.context import client_address, render, web_of
from gateway.web.security import new_token, same_origin, same_token
from gateway.web.sessions import Flash, Session

SESSION_COOKIE = "sg_session"
SIGNIN_COOKIE = "sg_signin"

Page = Callable[[Request, Session], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]


def https(request: Request) -> bool:
    return request.url.scheme == "https"


def cookie_name(request: Request, base: str) -> str:
    # __Host-: the browser keeps it only if Secure, for this host, for the whole site.
    return f"__Host-{base}" if https(request) else base


def set_cookie(response: Response, request: Request, base: str, value: str) -> None:
    response.set_cookie(
        cookie_name(request, base),
        value,
        path="/",
        secure=https(request),
        httponly=True,
        samesite="strict",
    )


def clear_cookie(response: Response, request: Request, base: str) -> None:
    response.delete_cookie(
        cookie_name(request, base),
        path="/",
        secure=https(request),
        httponly=True,
        samesite="strict",
    )


async def current_session(request: Request, take_flash: bool = False) -> Session | None:
    web = web_of(request)
    session_id = web.sessions.session_id(request.cookies.get(cookie_name(request, SESSION_COOKIE)))
    if session_id is None:
        return None
    found: Session | None = await web.blocking(lambda: web.sessions.load(session_id, take_flash))
    return found


def safe_next(target: str | None) -> str:
    """Where to go after sign-in: a path on this site only (never //elsewhere or a URL)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def guard(admin: bool = False, flash: bool = True) -> Callable[[Page], Endpoint]:
    def wrap(handler: Page) -> Endpoint:
        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            web = web_of(request)
            posting = request.method == "POST"
            session = await current_session(request, take_flash=flash and not posting)
            if session is None:
                if posting:
                    return RedirectResponse("/signin", 303)
                here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"/signin?next={_quote(here)}", 303)
            if admin and not session.user.admin:
                web.log.warning("forbidden", user=session.user.name, path=request.url.path)
                return render(
                    request,
                    session,
                    "error.html",
                    403,
                    title="Only for administrators",
                    message="This page manages accounts; your account reviews held mail. "
                    "Ask an administrator if you need a change.",
                )
            if posting:
                refused = await _csrf_refusal(request, session)
                if refused is not None:
                    return refused
            return await handler(request, session)

        return endpoint

    return wrap


async def _csrf_refusal(request: Request, session: Session) -> Response | None:
    web = web_of(request)
    form = await request.form(max_files=0, max_fields=50)
    token = form.get("csrf")
    origin_ok = _from_here(request)
    if isinstance(token, str) and same_token(token, session.csrf) and origin_ok:
        return None
    web.log.warning(
        "form refused",
        user=session.user.name,
        path=request.url.path,
        why="cross-site origin" if not origin_ok else "missing or wrong CSRF token",
    )
    return render(
        request,
        session,
        "error.html",
        403,
        title="This form could not be accepted",
        message="It has expired or did not come from this site, so nothing was done. "
        "Go back, reload the page, and try again.",
    )


def _from_here(request: Request) -> bool:
    headers = request.headers
    return same_origin(headers.get("origin"), headers.get("host"), request.url.scheme)


def _quote(path: str) -> str:
    from urllib.parse import quote

    return quote(path, safe="/")


# --- the pages -----------------------------------------------------------------------------------


async def signin_form(request: Request) -> Response:
    if await current_session(request) is not None:
        return RedirectResponse(safe_next(request.query_params.get("next")), 303)
    notice = None
    if request.query_params.get("out"):
        notice = Flash("ok", "You have signed out.")
    return _form(request, 200, notice, "")


def _form(request: Request, status: int, notice: Flash | None, name: str) -> Response:
    web = web_of(request)
    token = new_token()
    response = render(
        request,
        None,
        "signin.html",
        status,
        flash=notice,
        token=token,
        name=name,
        next=safe_next(request.query_params.get("next")),
    )
    set_cookie(response, request, SIGNIN_COOKIE, web.sessions.signin_cookie(token))
    return response


async def signin(request: Request) -> Response:
    web = web_of(request)
    form = await request.form(max_files=0, max_fields=10)
    name = str(form.get("name") or "")[:200]
    password = str(form.get("password") or "")
    target = safe_next(str(form.get("next") or ""))
    client = client_address(request)
    expected = web.sessions.signin_token(request.cookies.get(cookie_name(request, SIGNIN_COOKIE)))
    given = str(form.get("csrf") or "")
    origin_ok = _from_here(request)
    if expected is None or not same_token(given, expected) or not origin_ok:
        web.log.warning("sign-in form refused", client=client)
        notice = Flash("error", "The sign-in form had expired. Please sign in again.")
        return _form(request, 400, notice, name)

    keys = throttle_keys(name, client)
    # Counted as a failure before the password is checked (and taken back if it is right):
    # attempts sent in parallel cannot all be checked while the first one is.
    wait: float = await web.blocking(lambda: web.throttle.attempt(keys))
    if wait > 0:
        known: User | None = await web.blocking(lambda: web.accounts.get(name))
        await _failed(request, known, client, "throttled")
        seconds = math.ceil(wait)
        notice = Flash(
            "error",
            f"Too many failed sign-ins. Wait {seconds} second{'s' if seconds != 1 else ''}, "
            "then try again.",
        )
        return _form(request, 429, notice, name)

    user, why = await web.blocking(lambda: web.accounts.authenticate(name, password))
    if not why and user is not None and user.role is Role.SUBMIT:
        why = "submit-only"  # an account for SMTP AUTH: no web sign-in
    if why or user is None:
        await _failed(request, user, client, why or "unknown-account")
        notice = Flash("error", "That name and password do not match an active account.")
        return _form(request, 401, notice, name)

    await web.blocking(lambda: web.throttle.succeeded(*keys))
    old = web.sessions.session_id(request.cookies.get(cookie_name(request, SESSION_COOKIE)))
    session_id = await web.blocking(lambda: web.sessions.create(user.name, client, old))
    await web.audit([audit.signed_in(user.name, client)])
    web.log.info("signed in", user=user.name, client=client)
    response = RedirectResponse(target, 303)
    set_cookie(response, request, SESSION_COOKIE, web.sessions.cookie_value(session_id))
    clear_cookie(response, request, SIGNIN_COOKIE)
    return response


async def _failed(request: Request, user: User | None, client: str, why: str) -> None:
    web = web_of(request)
    name = user.name if user is not None else ""
    await web.audit([audit.sign_in_failed(name, client, why)])
    web.log.warning("sign-in failed", user=name or None, client=client, why=why)


@guard(flash=False)
async def signout(request: Request, session: Session) -> Response:
    web = web_of(request)
    await web.blocking(lambda: web.sessions.end(session))
    client = client_address(request)
    await web.audit([audit.signed_out(session.user.name, client)])
    web.log.info("signed out", user=session.user.name, client=client)
    response = RedirectResponse("/signin?out=1", 303)
    clear_cookie(response, request, SESSION_COOKIE)
    return response
