"""The composition root: builds the gateway's parts from the settings, and nothing else does."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import structlog

from gateway import logs
from gateway.config.settings import Settings
from gateway.config.values import RelayTls
from gateway.core.allowlist import Allowlist
from gateway.delivery.smarthost import Relay
from gateway.filter.orchestrator import Filter
from gateway.posture import allowlists
from gateway.posture.assessment import Posture
from gateway.posture.dns import DnsResolver
from gateway.posture.domaincheck import DomainChecker
from gateway.posture.stsfetch import PolicyFetcher, default_client, tls_context
from gateway.review.model import Review
from gateway.runtime.workers import Supervisor
from gateway.smtp.server import Admission, GatewaySMTP, Handler
from gateway.store.crypto import Sealer, load_key
from gateway.store.policycache import PolicyDb
from gateway.store.sqlite import SqliteStore

POLICY_DB = "sts-cache.sqlite3"


def data_dir(settings: Settings) -> Path:
    return settings.path(settings.store.data_dir)


def load_allowlist(settings: Settings) -> allowlists.Loaded:
    return allowlists.load(allowlists.expand(settings.allowlist.paths, settings.base_dir))


@asynccontextmanager
async def posture(settings: Settings, allowlist: Allowlist) -> AsyncIterator[Posture]:
    ca_file = settings.path(settings.mta_sts.ca_file) if settings.mta_sts.ca_file else None
    resolver = DnsResolver(settings.dns)
    cache = PolicyDb(data_dir(settings) / POLICY_DB)
    try:
        async with default_client(tls_context(ca_file), settings.mta_sts.fetch_timeout) as client:
            workers = settings.smtp.workers
            # The bound on concurrent fetches holds for all worker processes together.
            fetcher = PolicyFetcher(
                resolver, settings.mta_sts, client, max_concurrency=max(1, 16 // workers)
            )
            locks = data_dir(settings) / "sts-locks" if workers > 1 else None
            if locks is not None:
                locks.mkdir(parents=True, exist_ok=True)
            checker = DomainChecker(
                resolver,
                fetcher,
                cache,
                lock_dir=locks,
                lock_timeout=settings.mta_sts.fetch_timeout * 2,
            )
            yield Posture(settings, allowlist, checker)
    finally:
        cache.close()


def hostname(settings: Settings) -> str:
    # socket.gethostname, not getfqdn: getfqdn asks DNS, behind the operator's back.
    return settings.smtp.hostname or socket.gethostname()


def open_store(settings: Settings) -> SqliteStore:
    folder = data_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    return SqliteStore(folder, Sealer(load_key(settings, folder)))


def open_relay(settings: Settings) -> Relay:
    relay_ca = settings.path(settings.relay.ca_file) if settings.relay.ca_file else None
    relay_tls = tls_context(relay_ca) if settings.relay.tls is not RelayTls.NONE else None
    return Relay(settings.relay, hostname(settings), relay_tls)


async def serve(settings: Settings, ready: asyncio.Event | None = None, worker: int = 0) -> None:
    """Run the SMTP filter until SIGTERM or SIGINT; then stop accepting, let sessions in
    progress finish (briefly), and close. Worker 0 leads: it also runs the scheduler, the web
    UI and, with [smtp] workers > 1, the other workers."""
    leader = worker == 0
    if settings.smtp.workers > 1:
        structlog.contextvars.bind_contextvars(worker=worker)
    log = logs.get("gateway")
    loaded = load_allowlist(settings)
    for problem in loaded.problems:
        log.warning("allowlist problem", problem=str(problem))
    log.info(
        "allowlist loaded",
        files=[str(f) for f in loaded.files],
        entries=len(loaded.allowlist.entries),
    )
    folder = data_dir(settings)
    store, relay = open_store(settings), open_relay(settings)
    name = hostname(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    review = Review(settings, store, relay, name)
    wake = asyncio.Event()
    # Every worker sends the notices of its own holds at once (the outbox lets only one send
    # each); only the leader sweeps.
    scheduler = asyncio.create_task(_scheduler(review, settings, wake, stop, sweep=leader))
    supervisor = Supervisor(settings.source, settings.smtp.workers - 1) if leader else None
    web_ui = None
    try:
        async with posture(settings, loaded.allowlist) as checker:
            filter_ = Filter(settings, checker, store, relay, name, on_hold=wake.set)
            handler = Handler(filter_, settings.smtp.max_recipients)
            admission = Admission(settings.smtp.trusted_networks, settings.smtp.max_connections)
            server = await loop.create_server(
                lambda: GatewaySMTP(
                    handler,
                    admission,
                    hostname=name,
                    data_size_limit=settings.smtp.max_message_size,
                    enable_SMTPUTF8=True,
                    decode_data=False,
                    timeout=settings.smtp.command_timeout,
                ),
                settings.smtp.listen.host,
                settings.smtp.listen.port,
                reuse_address=True,
                reuse_port=settings.smtp.workers > 1,
            )
            if supervisor is not None:
                await supervisor.start()
            if settings.web.enabled and leader:
                from gateway.web.server import start_in_serve  # loads the web stack

                web_ui = await start_in_serve(settings, review, store, checker, wake.set)
            log.info(
                "listening",
                smtp=str(settings.smtp.listen),
                relay=f"{settings.relay.host}:{settings.relay.port}",
                data_dir=str(folder),
            )
            if ready is not None:
                ready.set()
            await stop.wait()
            log.info("stopping", sessions=admission.active)
            server.close()
            if supervisor is not None:
                await supervisor.stop()
            if web_ui is not None:
                await web_ui.stop()
                web_ui = None
            for _ in range(100):  # up to 10 s for sessions in progress
                if admission.active == 0:
                    break
                await asyncio.sleep(0.1)
    finally:
        stop.set()
        wake.set()
        if web_ui is not None:
            await web_ui.stop()
        await scheduler
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await relay.close()
        await store.close()
        log.info("stopped")


async def _scheduler(
    review: Review,
    settings: Settings,
    wake: asyncio.Event,
    stop: asyncio.Event,
    sweep: bool = True,
) -> None:
    """Sweep every [review] sweep_interval; send notices at once when a hold wakes us."""
    log = logs.get("gateway.scheduler")
    interval = settings.review.sweep_interval
    next_sweep = 0.0 if sweep else float("inf")
    while not stop.is_set():
        wake.clear()  # before the work: a hold that arrives during it wakes the next round
        try:
            if time.monotonic() >= next_sweep:
                report = await review.sweep()
                next_sweep = time.monotonic() + interval
                if report.escalated or report.expired or report.purged or report.released:
                    log.info(
                        "sweep",
                        escalated=report.escalated,
                        expired=report.expired,
                        purged=report.purged,
                        released=report.released,
                    )
            else:
                await review.drain_notices()
        except Exception:  # the scheduler must outlive a bad sweep; it runs again later
            log.exception("sweep failed")
            if sweep:
                next_sweep = time.monotonic() + interval
        if stop.is_set():
            break
        with contextlib.suppress(TimeoutError):
            timeout = min(max(0.0, next_sweep - time.monotonic()), interval)
            await asyncio.wait_for(wake.wait(), timeout)


@asynccontextmanager
async def review_session(settings: Settings) -> AsyncIterator[Review]:
    """The review model with its store and relay, for the one-shot commands."""
    store, relay = open_store(settings), open_relay(settings)
    try:
        yield Review(settings, store, relay, hostname(settings))
    finally:
        await relay.close()
        await store.close()
