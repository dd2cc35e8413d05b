"""Serving the review web UI with uvicorn: inside `gateway serve` (on its event loop, beside
the SMTP filter) or on its own with `gateway web`.

The listening socket is bound here, not by uvicorn, so that a port in use is an ordinary
OSError; uvicorn's own signal handlers are left out, because the gateway's handle SIGTERM and
SIGINT and then stop the web server with everything else.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

import uvicorn
from argon2 import PasswordHasher
from starlette.applications import Starlette

from gateway import logs
from gateway.accounts.users import USERS_DB, Accounts, Throttle
from gateway.config.settings import Settings
from gateway.config.values import HostPort
from gateway.errors import ConfigError
from gateway.posture.assessment import Posture
from gateway.review.model import Review
from gateway.runtime.serve import (
    data_dir,
    hostname,
    load_allowlist,
    open_relay,
    open_store,
    posture,
)
from gateway.store import HoldStore
from gateway.web.app import create_app
from gateway.web.context import Web
from gateway.web.security import load_secret
from gateway.web.sessions import Sessions
from gateway.web.templating import environment

STOP_TIMEOUT = 5  # seconds for requests in progress when the gateway stops


def build(
    settings: Settings,
    review: Review,
    store: HoldStore,
    checker: Posture | None,
    after_decision: Callable[[], Awaitable[object]] | None = None,
    clock: Callable[[], float] = time.time,
    hasher: PasswordHasher | None = None,
) -> Starlette:
    folder = data_dir(settings)
    secret = load_secret(settings, folder)
    users = folder / USERS_DB
    sessions = Sessions(
        users,
        secret,
        settings.web.session_max_age,
        settings.web.session_idle_timeout,
        clock,
    )
    web = Web(
        settings=settings,
        review=review,
        store=store,
        accounts=Accounts(users, clock, hasher),
        throttle=Throttle(users, clock),
        sessions=sessions,
        templates=environment(),
        posture=checker,
        after_decision=after_decision,
        clock=clock,
    )
    return create_app(web)


def tls_files(settings: Settings) -> tuple[str, str] | None:
    """The certificate and key, loaded now so that a mistake stops the start with the key's
    name rather than failing in the middle of serving. (``config.load`` saw both or neither.)"""
    cert, key = settings.web.tls_cert, settings.web.tls_key
    if not cert:
        return None
    cert_path, key_path = str(settings.path(cert)), str(settings.path(key))
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert_path, key_path)
    except (OSError, ssl.SSLError) as exc:
        problem = f"cannot load {cert_path} with {key_path}: {exc}"
        raise ConfigError("web.tls_cert", problem) from exc
    return cert_path, key_path


class _EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the gateway's signal handlers stop us


@dataclass
class WebServer:
    url: str
    _server: _EmbeddedServer
    _task: asyncio.Task[None]

    async def stop(self) -> None:
        self._server.should_exit = True
        try:
            await self._task
        except Exception:  # stopping must not hide why the gateway stops
            logs.get("gateway.web").exception("web server stopped with an error")


def _bind(listen: HostPort) -> tuple[socket.socket, str]:
    host, port = listen.host, listen.port
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    return sock, f"{shown}:{port}"


async def start(settings: Settings, app: Starlette) -> WebServer:
    """Listen on [web] listen and serve ``app`` until ``stop()``; OSError if the address is
    taken, ConfigError for a bad TLS setting."""
    tls = tls_files(settings)
    sock, where = _bind(settings.web.listen)
    config = uvicorn.Config(
        app,
        lifespan="off",
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=True,  # X-Forwarded-For/-Proto from a proxy on loopback only
        forwarded_allow_ips="127.0.0.1,::1",
        ssl_certfile=tls[0] if tls else None,
        ssl_keyfile=tls[1] if tls else None,
        timeout_graceful_shutdown=STOP_TIMEOUT,
        timeout_keep_alive=5,
    )
    server = _EmbeddedServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="web-ui")
    while not server.started:
        if task.done():
            sock.close()
            task.result()  # raises what stopped it
            raise OSError(f"the web UI did not start on {where}")
        await asyncio.sleep(0.01)
    url = f"{'https' if tls else 'http'}://{where}/"
    return WebServer(url, server, task)


async def start_in_serve(
    settings: Settings,
    review: Review,
    store: HoldStore,
    checker: Posture,
    wake: Callable[[], None],
) -> WebServer | None:
    """For `gateway serve`: the web UI on the same event loop. A port in use is logged and the
    SMTP filter runs on without it (mail keeps flowing; `gateway held` still reviews)."""
    log = logs.get("gateway.web")

    async def wake_scheduler() -> None:
        wake()  # the scheduler sends the notices at once

    app = build(settings, review, store, checker, wake_scheduler)
    try:
        server = await start(settings, app)
    except OSError as exc:
        log.error("web UI not started", listen=str(settings.web.listen), error=str(exc))
        return None
    log.info("web UI listening", url=server.url)
    return server


async def serve_alone(settings: Settings, ready: asyncio.Event | None = None) -> None:
    """`gateway web`: the review UI without the SMTP filter, until SIGTERM or SIGINT."""
    log = logs.get("gateway.web")
    loaded = load_allowlist(settings)
    for problem in loaded.problems:
        log.warning("allowlist problem", problem=str(problem))
    store, relay = open_store(settings), open_relay(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        review = Review(settings, store, relay, hostname(settings))
        async with posture(settings, loaded.allowlist) as checker:
            server = await start(settings, build(settings, review, store, checker))
            log.info("web UI listening", url=server.url, data_dir=str(data_dir(settings)))
            if ready is not None:
                ready.set()
            await stop.wait()
            log.info("stopping")
            await server.stop()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await relay.close()
        await store.close()
        log.info("stopped")
