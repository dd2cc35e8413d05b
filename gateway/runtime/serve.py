"""`gateway serve`: the SMTP filter, its scheduler, the web UI and the worker processes, built
from the runtime's parts and run until SIGTERM or SIGINT; SIGHUP reloads the allowlist and the
SMTP certificate. The leader keeps its pid in ``gateway.pid`` in the data directory (for
`gateway reload`).

The order keeps every start-up check ahead of the first socket: the settings are loaded, the
parts opened, the SMTP certificate loaded and the web UI built (its secret and TLS pair loaded)
before the SMTP and web ports are bound, and all are bound before a worker starts. Whatever
fails, everything started so far is stopped again, the workers included.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import TYPE_CHECKING, Any

import structlog

from gateway import logs
from gateway.accounts.users import Accounts, Throttle
from gateway.config.settings import Settings
from gateway.config.values import StoreBackend
from gateway.filter.orchestrator import Filter
from gateway.posture.assessment import Posture
from gateway.runtime import pidfile
from gateway.runtime.allocator import fix_thresholds, trimmer
from gateway.runtime.inuse import explained
from gateway.runtime.lifecycle import Running, lifecycle
from gateway.runtime.limits import raise_open_files
from gateway.runtime.parts import data_dir, open_accounts
from gateway.runtime.reload import reload_allowlist
from gateway.runtime.scheduler import (
    deliver_queue,
    keep_witness,
    schedule_review,
    stop_scheduler,
    stop_witness,
)
from gateway.runtime.sdnotify import notify
from gateway.runtime.workers import Supervisor, die_with_leader, tell_leader
from gateway.smtp.admission import Admission, Identity
from gateway.smtp.auth import SubmitAuth
from gateway.smtp.budget import DataBudget
from gateway.smtp.handler import Handler
from gateway.smtp.server import GatewaySMTP
from gateway.smtp.tls import ServerTls
from gateway.store.crypto import KEY_FILE as STORE_KEY_FILE
from gateway.store.crypto import uses_default_key

if TYPE_CHECKING:
    from gateway.runtime.portal import EmbeddedPortal
    from gateway.runtime.webui import EmbeddedWeb

SESSION_DRAIN = 10.0  # seconds for sessions in progress when the gateway stops


async def serve(
    settings: Settings,
    ready: asyncio.Event | None = None,
    worker: int = 0,
    ready_fd: int | None = None,
) -> None:
    """Run the SMTP filter until SIGTERM or SIGINT; then stop accepting, let sessions in
    progress finish (briefly), and close. Worker 0 leads: it also runs the sweeps, the web UI
    and, with [smtp] workers > 1, the other workers; a worker tells it on ``ready_fd`` that it
    listens."""
    leader = worker == 0
    if not leader:
        die_with_leader()
    if settings.smtp.workers > 1:
        structlog.contextvars.bind_contextvars(worker=worker)
    log = logs.get("gateway")
    raise_open_files(log)
    fix_thresholds(log)
    async with lifecycle(settings, log) as running, contextlib.AsyncExitStack() as started:
        wake = asyncio.Event()
        queue_wake = asyncio.Event()
        accounts = _accounts(settings, leader)
        if accounts is not None:
            started.callback(accounts.close)
        web_ui = _web_ui(settings, running, wake, accounts) if leader else None
        portal = _portal(settings, running, wake) if leader else None
        server_tls = ServerTls(settings) if settings.smtp.tls_cert else None
        admission = _admission(settings, server_tls, accounts)
        servers = await _listen(settings, running, admission, wake, queue_wake, server_tls)
        for server in servers:
            started.callback(server.close)
        if web_ui is not None:
            web_ui.bind()
            started.push_async_callback(web_ui.stop)
        if portal is not None:
            portal.bind()
            started.push_async_callback(portal.stop)
        supervisor = await _start_workers(settings, started) if leader else None
        _on_hangup(settings, running.posture, server_tls, supervisor, log)
        if leader:  # once it listens: a start that fails never touches a running one's file
            started.callback(pidfile.remove, pidfile.write(data_dir(settings)))
        started.callback(asyncio.get_running_loop().remove_signal_handler, signal.SIGHUP)
        if ready_fd is not None:
            tell_leader(ready_fd)
        # Every worker sends the notices of its own holds at once (the outbox lets only one
        # send each); only the leader sweeps.
        scheduler = asyncio.create_task(
            schedule_review(running.review, settings, wake, running.stop, sweep=leader)
        )
        started.push_async_callback(stop_scheduler, scheduler, running.stop, wake)
        if running.queue is not None:
            delivering = asyncio.create_task(
                deliver_queue(running.queue, running, queue_wake, wake)
            )
            started.push_async_callback(stop_scheduler, delivering, running.stop, queue_wake)
        if leader:
            witnessing = keep_witness(settings, running, wake)
            started.push_async_callback(stop_witness, witnessing, running.stop)
        if web_ui is not None:
            await web_ui.start()
        if portal is not None:
            await portal.start()
        log.info(
            "listening",
            smtp=str(settings.smtp.listen),
            smtps=str(settings.smtp.implicit_tls_address or "") or None,
            starttls=server_tls is not None,
            relay=f"{settings.relay.host}:{settings.relay.port}",
            data_dir=str(data_dir(settings)),
        )
        if leader and uses_default_key(settings) and settings.store.backend is StoreBackend.SQLITE:
            # The key beside the data it seals: the disk that dies takes both.
            log.warning(
                "store key made by the gateway beside the data: keep a copy elsewhere, or set"
                " [store] key_file; losing it loses every held message (docs/deployment.md)",
                key_file=str(data_dir(settings) / STORE_KEY_FILE),
            )
        if ready is not None:
            ready.set()
        if leader:
            notify("READY=1")
        await running.stop.wait()
        log.info("stopping", sessions=admission.active)
        if leader:
            notify("STOPPING=1")
        for server in servers:
            server.close()
        if supervisor is not None:
            await supervisor.stop()
        if web_ui is not None:
            await web_ui.stop()
        if portal is not None:
            await portal.stop()
        await _drain(admission)  # then the scheduler stops and the parts close


async def _start_workers(
    settings: Settings, started: contextlib.AsyncExitStack
) -> Supervisor | None:
    """The other worker processes, listening when this returns; WorkerFailed if one is not."""
    if settings.smtp.workers <= 1:
        return None
    supervisor = Supervisor(settings.source, settings.smtp.workers - 1)
    started.push_async_callback(supervisor.stop)
    await supervisor.start()
    return supervisor


def _accounts(settings: Settings, leader: bool) -> Accounts | None:
    """The accounts, when this process serves the web UI or SMTP AUTH (one store for both)."""
    if settings.smtp.tls_cert or (leader and settings.web.enabled):
        return open_accounts(settings)
    return None


def _web_ui(
    settings: Settings, running: Running, wake: asyncio.Event, accounts: Accounts | None
) -> EmbeddedWeb | None:
    """The web UI, built (its secret and TLS pair loaded) before anything listens."""
    if not settings.web.enabled or accounts is None:
        return None
    from gateway.runtime.webui import EmbeddedWeb  # loads the web stack

    return EmbeddedWeb(
        settings, running.review, running.store, running.posture, wake.set, accounts.records
    )


def _portal(settings: Settings, running: Running, wake: asyncio.Event) -> EmbeddedPortal | None:
    """The recipients' portal ([portal] enabled), on its own listener, never the web UI's."""
    if not settings.portal.enabled:
        return None
    from gateway.runtime.portal import EmbeddedPortal  # loads the portal's stack

    return EmbeddedPortal(settings, running.review, running.store, wake.set)


def _admission(
    settings: Settings, server_tls: ServerTls | None, accounts: Accounts | None
) -> Admission:
    """Who may send: trusted networks; with inbound TLS also client certificates and SMTP
    AUTH for submit accounts (whose file is the web UI's accounts file)."""
    smtp = settings.smtp
    submit = None
    if server_tls is not None and accounts is not None:
        submit = SubmitAuth(accounts, Throttle(accounts.records))
    identity = Identity(
        tls=server_tls is not None,
        require_tls=smtp.require_tls,
        trusted_client_names=smtp.trusted_client_names,
        auth=submit,
    )
    return Admission(
        smtp.trusted_networks, smtp.max_connections, identity, smtp.tls_exempt_networks
    )


def _on_hangup(
    settings: Settings,
    posture: Posture,
    server_tls: ServerTls | None,
    supervisor: Supervisor | None,
    log: Any,
) -> None:
    """SIGHUP re-reads the allowlist files (gateway.runtime.reload: all or nothing, for the
    next message decided) and the certificate files (for new handshakes; sessions in progress
    keep theirs) in this process, and the leader passes it on to every worker. A file that does
    not load keeps the list or certificate in force. SIGHUP never stops the gateway."""

    def reload() -> None:
        if supervisor is not None:
            supervisor.send_signal(signal.SIGHUP)
        reload_allowlist(settings, posture, log)
        if server_tls is None:
            log.info("certificate: none to reload (no smtp.tls_cert)")
            return
        problem = server_tls.reload()
        if problem:
            log.error("certificate reload failed; the old certificate stays", problem=problem)
        else:
            log.info("certificate reloaded", cert=server_tls.cert_file)

    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reload)


async def _listen(
    settings: Settings,
    running: Running,
    admission: Admission,
    wake: asyncio.Event,
    queue_wake: asyncio.Event,
    server_tls: ServerTls | None,
) -> list[asyncio.Server]:
    """Bind the SMTP port (STARTTLS offered when there is a certificate) and the implicit TLS
    port when configured (RFC 8314), and accept sessions; OSError if one is taken."""
    filter_ = Filter(
        settings,
        running.posture,
        running.store,
        running.delivery,
        running.hostname,
        on_hold=wake.set,
        on_queue=queue_wake.set,
    )
    handler = Handler(filter_, settings.smtp.max_recipients, settings.policy.local_domains)
    context = server_tls.context if server_tls is not None else None
    # One budget for the process: both listeners share it.
    budget = DataBudget.of(settings.smtp, after_large=trimmer())

    def session(implicit: bool) -> Any:
        return GatewaySMTP(
            handler,
            admission,
            budget,
            implicit=implicit,
            hostname=running.hostname,
            data_size_limit=settings.smtp.max_message_size,
            enable_SMTPUTF8=True,
            decode_data=False,
            timeout=settings.smtp.command_timeout,
            tls_context=None if implicit else context,
        )

    loop = asyncio.get_running_loop()
    reuse_port = settings.smtp.workers > 1
    listen = settings.smtp.listen
    try:
        servers = [
            await loop.create_server(
                lambda: session(False),
                listen.host,
                listen.port,
                reuse_address=True,
                reuse_port=reuse_port,
            )
        ]
    except OSError as exc:
        raise explained(exc, listen, "smtp.listen") from exc
    implicit = settings.smtp.implicit_tls_address
    if implicit is not None and context is not None:
        try:
            servers.append(
                await loop.create_server(
                    lambda: session(True),
                    implicit.host,
                    implicit.port,
                    ssl=context,
                    reuse_address=True,
                    reuse_port=reuse_port,
                )
            )
        except BaseException as exc:
            servers[0].close()
            if isinstance(exc, OSError):
                raise explained(exc, implicit, "smtp.implicit_tls_listen") from exc
            raise
    return servers


async def _drain(admission: Admission) -> None:
    for _ in range(int(SESSION_DRAIN * 10)):
        if admission.active == 0:
            break
        await asyncio.sleep(0.1)
