"""Accounts: administrators add, disable, enable and set passwords (/admin); everyone changes
their own password (/account). Each change is audited with the signed-in name, and ends the
sessions it makes stale."""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from gateway.accounts.users import Role, User, normalise_name
from gateway.audit import events as audit
from gateway.errors import UserError
from gateway.store import AuditRecord
from gateway.web.auth import guard
from gateway.web.context import render, web_of
from gateway.web.sessions import Session


async def _field(request: Request, name: str) -> str:
    form = await request.form()
    value = form.get(name)
    return value if isinstance(value, str) else ""


async def _flash(request: Request, session: Session, kind: str, text: str) -> None:
    web = web_of(request)
    await web.blocking(lambda: web.sessions.flash(session, kind, text))


@guard(admin=True)
async def users(request: Request, session: Session) -> Response:
    web = web_of(request)
    accounts: list[User] = await web.blocking(web.accounts.all)
    return render(request, session, "users.html", accounts=accounts, roles=[r.value for r in Role])


@guard(admin=True)
async def add_user(request: Request, session: Session) -> Response:
    web = web_of(request)
    name, role = await _field(request, "name"), await _field(request, "role")
    password, again = await _field(request, "password"), await _field(request, "again")
    back = RedirectResponse("/admin/users", 303)
    if password != again:
        await _flash(request, session, "error", "The two passwords differ: nothing was changed.")
        return back
    try:
        user: User = await web.blocking(lambda: web.accounts.add(name, role, password))
    except UserError as exc:
        await _flash(request, session, "error", f"Not added: {exc}.")
        return back
    await web.audit([audit.user_added(user.name, user.role.value, session.user.name)])
    web.log.info("user added", user=user.name, role=user.role.value, by=session.user.name)
    await _flash(request, session, "ok", f"Added {user.name} ({user.role.value}).")
    return back


async def _change(
    request: Request,
    session: Session,
    change: Callable[[str], User],
    record: Callable[[str, str], AuditRecord],
    done: str,
) -> Response:
    web = web_of(request)
    back = RedirectResponse("/admin/users", 303)
    try:
        name = normalise_name(request.path_params["name"])
        user: User = await web.blocking(lambda: change(name))
    except UserError as exc:
        await _flash(request, session, "error", f"Nothing was changed: {exc}.")
        return back
    await web.audit([record(user.name, session.user.name)])
    web.log.info(done, user=user.name, by=session.user.name)
    await _flash(request, session, "ok", f"{user.name}: {done}.")
    return back


@guard(admin=True)
async def disable(request: Request, session: Session) -> Response:
    web = web_of(request)
    if request.path_params["name"].lower() == session.user.name:
        await _flash(request, session, "error", "You cannot disable your own account.")
        return RedirectResponse("/admin/users", 303)

    def change(name: str) -> User:
        user = web.accounts.set_disabled(name, True)
        web.sessions.end_all(user.name)
        return user

    return await _change(request, session, change, audit.user_disabled, "disabled")


@guard(admin=True)
async def enable(request: Request, session: Session) -> Response:
    web = web_of(request)
    return await _change(
        request,
        session,
        lambda name: web.accounts.set_disabled(name, False),
        audit.user_enabled,
        "enabled",
    )


@guard(admin=True)
async def set_password(request: Request, session: Session) -> Response:
    web = web_of(request)
    password, again = await _field(request, "password"), await _field(request, "again")
    if password != again:
        await _flash(request, session, "error", "The two passwords differ: nothing was changed.")
        return RedirectResponse("/admin/users", 303)

    def change(name: str) -> User:
        user = web.accounts.set_password(name, password)
        web.sessions.end_all(user.name, keep=session)
        return user

    return await _change(request, session, change, audit.password_changed, "password set")


@guard()
async def account(request: Request, session: Session) -> Response:
    return render(request, session, "account.html")


@guard()
async def change_own_password(request: Request, session: Session) -> Response:
    web = web_of(request)
    current = await _field(request, "current")
    password, again = await _field(request, "password"), await _field(request, "again")
    back = RedirectResponse("/account", 303)
    name = session.user.name
    if not await web.blocking(lambda: web.accounts.password_is(name, current)):
        await _flash(request, session, "error", "Your current password was not right.")
        return back
    if password != again:
        await _flash(request, session, "error", "The two new passwords differ.")
        return back
    try:
        await web.blocking(lambda: web.accounts.set_password(name, password))
    except UserError as exc:
        await _flash(request, session, "error", f"Not changed: {exc}.")
        return back
    await web.blocking(lambda: web.sessions.end_all(name, keep=session))
    await web.audit([audit.password_changed(name, name)])
    web.log.info("password changed", user=name, by=name)
    await _flash(request, session, "ok", "Your password is changed; other sessions are ended.")
    return back
