"""The review web UI's parts and its two ways of running: beside the SMTP filter in
`gateway serve`, or alone as `gateway web`. Imported only when the web UI is used, so that the
other commands do not load Starlette, Jinja2 and uvicorn.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Awaitable, Callable

from argon2 import PasswordHasher
from starlette.applications import Starlette

from gateway import logs
from gateway.accounts.users import Accounts, Throttle
from gateway.config.settings import Settings
from gateway.posture.assessment import Posture
from gateway.review.model import Review
from gateway.runtime.embedded import EmbeddedApp, load_tls_pair
from gateway.runtime.inuse import explained
from gateway.runtime.lifecycle import lifecycle
from gateway.runtime.parts import data_dir, open_accounts
from gateway.runtime.reload import reload_allowlist
from gateway.store import HoldStore
from gateway.store.accountstore import AccountStore
from gateway.web import server
from gateway.web.app import create_app
from gateway.web.context import Web
from gateway.web.security import load_secret
from gateway.web.sessions import Sessions
from gateway.web.templating import environment


def build_web(
    settings: Settings,
    review: Review,
    store: HoldStore,
    posture: Posture | None,
    after_decision: Callable[[], Awaitable[object]] | None = None,
    clock: Callable[[], float] = time.time,
    hasher: PasswordHasher | None = None,
    *,
    records: AccountStore,
) -> Starlette:
    """The web app with its secret, and its sessions, accounts and throttle on ``records``
    (``parts.open_accounts``), and templates. ConfigError for an unreadable or unsafe secret
    key file."""
    folder = data_dir(settings)
    secret = load_secret(settings, folder)
    sessions = Sessions(
        records,
        secret,
        settings.web.session_max_age,
        settings.web.session_idle_timeout,
        clock,
    )
    web = Web(
        settings=settings,
        review=review,
        store=store,
        accounts=Accounts(records, clock, hasher),
        throttle=Throttle(records, clock),
        sessions=sessions,
        templates=environment(),
        posture=posture,
        after_decision=after_decision,
        clock=clock,
    )
    return create_app(web)


class EmbeddedWeb(EmbeddedApp):
    """The web UI inside `gateway serve` (``EmbeddedApp``). A port in use is logged and the
    SMTP filter runs on without it (mail keeps flowing; `gateway held` still reviews)."""

    def __init__(
        self,
        settings: Settings,
        review: Review,
        store: HoldStore,
        posture: Posture,
        wake: Callable[[], None],
        records: AccountStore,
    ) -> None:
        async def wake_scheduler() -> None:
            wake()  # the scheduler sends the notices at once

        app = build_web(settings, review, store, posture, wake_scheduler, records=records)
        web = settings.web
        tls = load_tls_pair(settings, "web")
        super().__init__(
            "web UI",
            "web.listen",
            web.listen,
            app,
            tls,
            web.trusted_proxies,
            logs.get("gateway.web"),
        )


async def serve_web(settings: Settings, ready: asyncio.Event | None = None) -> None:
    """`gateway web`: the review UI without the SMTP filter, until SIGTERM or SIGINT (SIGHUP
    re-reads the allowlist files). ConfigError
    or OSError (a port in use) before anything is served."""
    log = logs.get("gateway.web")
    async with lifecycle(settings, log) as running, contextlib.AsyncExitStack() as parts:
        tls = load_tls_pair(settings, "web")
        accounts = open_accounts(settings)
        parts.callback(accounts.close)
        app = build_web(
            settings, running.review, running.store, running.posture, records=accounts.records
        )
        try:
            listener = server.bind(settings.web.listen)
        except OSError as exc:
            raise explained(exc, settings.web.listen, "web.listen") from exc
        web_ui = await server.start(app, listener, tls, settings.web.trusted_proxies)
        # SIGHUP re-reads the allowlist, as in `gateway serve`, for the allowlist page.
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, reload_allowlist, settings, running.posture, log)
        parts.callback(loop.remove_signal_handler, signal.SIGHUP)
        try:
            log.info("web UI listening", url=web_ui.url, data_dir=str(data_dir(settings)))
            if ready is not None:
                ready.set()
            await running.stop.wait()
            log.info("stopping")
        finally:
            await web_ui.stop()
