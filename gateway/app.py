"""The composition root: builds the gateway's parts from the settings, and nothing else does."""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from gateway import allowlists, logs
from gateway.config import Settings, parse_hostport
from gateway.core.allowlist import Allowlist
from gateway.dns import DnsResolver
from gateway.domaincheck import DomainChecker
from gateway.posture import Posture
from gateway.relay import Relay
from gateway.service import Filter
from gateway.smtp_in import Admission, GatewaySMTP, Handler
from gateway.store.crypto import Sealer, load_key
from gateway.store.sqlite import SqliteStore
from gateway.stsdb import PolicyDb
from gateway.stsfetch import PolicyFetcher, default_client, tls_context

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
            fetcher = PolicyFetcher(resolver, settings.mta_sts, client)
            yield Posture(settings, allowlist, DomainChecker(resolver, fetcher, cache))
    finally:
        cache.close()


def hostname(settings: Settings) -> str:
    # socket.gethostname, not getfqdn: getfqdn asks DNS, behind the operator's back.
    return settings.smtp.hostname or socket.gethostname()


async def serve(settings: Settings, ready: asyncio.Event | None = None) -> None:
    """Run the SMTP filter until SIGTERM or SIGINT; then stop accepting, let sessions in
    progress finish (briefly), and close."""
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
    folder.mkdir(parents=True, exist_ok=True)
    store = SqliteStore(folder, Sealer(load_key(settings, folder)))
    name = hostname(settings)
    relay_ca = settings.path(settings.relay.ca_file) if settings.relay.ca_file else None
    relay_tls = tls_context(relay_ca) if settings.relay.tls != "none" else None
    relay = Relay(settings.relay, name, relay_tls)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with posture(settings, loaded.allowlist) as checker:
            filter_ = Filter(settings, checker, store, relay, name)
            handler = Handler(filter_, settings.smtp.max_recipients)
            admission = Admission(settings.smtp.trusted_networks, settings.smtp.max_connections)
            host, port = parse_hostport(settings.smtp.listen, 10025)
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
                host,
                port,
                reuse_address=True,
            )
            log.info(
                "listening",
                smtp=settings.smtp.listen,
                relay=f"{settings.relay.host}:{settings.relay.port}",
                data_dir=str(folder),
            )
            if ready is not None:
                ready.set()
            await stop.wait()
            log.info("stopping", sessions=admission.active)
            server.close()
            for _ in range(100):  # up to 10 s for sessions in progress
                if admission.active == 0:
                    break
                await asyncio.sleep(0.1)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await relay.close()
        await store.close()
        log.info("stopped")
