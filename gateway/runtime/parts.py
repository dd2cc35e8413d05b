"""The builders of the gateway's parts, from the settings: the only place that constructs them.

`gateway serve`, `gateway web` and the one-shot commands (`gateway held`, `gateway users`,
`gateway check`, `gateway sts-cache`) all take their store, relay, posture and accounts from here,
so each part is built one way. Each builder raises ConfigError for a bad setting and OSError
for what the system refuses (a data directory that cannot be created), before anything runs.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

from gateway.accounts.users import USERS_DB, Accounts
from gateway.config.settings import Settings
from gateway.config.values import RelayTls, StoreBackend
from gateway.core.allowlist import Allowlist
from gateway.delivery.deliver import Delivery
from gateway.delivery.mx import MxTransport
from gateway.delivery.smarthost import Smarthost, relay_tls_context
from gateway.posture import allowlists
from gateway.posture.assessment import Posture
from gateway.posture.dns import DnsResolver
from gateway.posture.domaincheck import DomainChecker
from gateway.posture.stsfetch import PolicyFetcher, default_client, tls_context
from gateway.review.model import Review
from gateway.store.auditkey import load_audit_key
from gateway.store.crypto import Sealer, load_key
from gateway.store.policycache import PolicyDb
from gateway.store.postgres import Database, PgStore
from gateway.store.postgres.database import describe
from gateway.store.protocols import HoldStore
from gateway.store.safeio import private_dir
from gateway.store.sqlite import SqliteStore

POLICY_DB = "sts-cache.sqlite3"
# Concurrent MTA-STS policy fetches, for all worker processes together.
FETCH_CONCURRENCY = 16


def data_dir(settings: Settings) -> Path:
    return settings.path(settings.store.data_dir)


def hostname(settings: Settings) -> str:
    # socket.gethostname, not getfqdn: getfqdn asks DNS, behind the operator's back.
    return settings.smtp.hostname or socket.gethostname()


def load_allowlist(settings: Settings) -> allowlists.Loaded:
    return allowlists.load(allowlists.expand(settings.allowlist.paths, settings.base_dir))


def open_policy_cache(settings: Settings) -> PolicyDb:
    return PolicyDb(data_dir(settings) / POLICY_DB)


@asynccontextmanager
async def open_posture(settings: Settings, allowlist: Allowlist) -> AsyncIterator[Posture]:
    """The posture of recipient domains: one resolver, the policy fetcher and its cache."""
    ca_file = settings.path(settings.mta_sts.ca_file) if settings.mta_sts.ca_file else None
    resolver = DnsResolver(settings.dns)
    workers = settings.smtp.workers
    locks = data_dir(settings) / "sts-locks" if workers > 1 else None
    if locks is not None:
        private_dir(locks)
    cache = open_policy_cache(settings)
    try:
        async with default_client(tls_context(ca_file), settings.mta_sts.fetch_timeout) as client:
            fetcher = PolicyFetcher(
                resolver,
                settings.mta_sts,
                client,
                max_concurrency=max(1, FETCH_CONCURRENCY // workers),
            )
            checker = DomainChecker(
                resolver,
                fetcher,
                cache,
                lock_dir=locks,
                lock_timeout=settings.mta_sts.fetch_timeout * 2,
            )
            yield Posture(settings, allowlist, checker)
    finally:
        await cache.close()


async def open_store(settings: Settings) -> HoldStore:
    """The hold store of [store] backend: SQLite files in data_dir, or the database the nodes
    share, its pool opened and its schema checked (SchemaMismatch, StoreUnavailable)."""
    folder = data_dir(settings)
    if settings.store.backend is StoreBackend.POSTGRESQL:
        # Both keys are given (the configuration checks it): never made in this node's folder.
        store = settings.store
        db = Database(
            store.dsn.reveal(),
            pool_size=store.pool_size,
            statement_timeout=store.statement_timeout,
            connect_timeout=store.connect_timeout,
            name="store",
        )
        shared = PgStore(db, Sealer(load_key(settings, folder)), load_audit_key(settings, folder))
        await shared.open()
        return shared
    private_dir(folder)
    audit_key = load_audit_key(settings, folder)
    return SqliteStore(folder, Sealer(load_key(settings, folder)), audit_key=audit_key)


def store_location(settings: Settings) -> str:
    """Where the store is, for logs and messages: the database without its password, or the
    data directory."""
    if settings.store.backend is StoreBackend.POSTGRESQL:
        return f"postgresql {describe(settings.store.dsn.reveal())}"
    return f"sqlite {data_dir(settings)}"


def open_relay(settings: Settings) -> Smarthost:
    relay_ca = settings.path(settings.relay.ca_file) if settings.relay.ca_file else None
    relay_tls = relay_tls_context(relay_ca) if settings.relay.tls is not RelayTls.NONE else None
    return Smarthost(settings.relay, hostname(settings), relay_tls)


def build_mx_transport(settings: Settings, posture: Posture) -> MxTransport:
    """Direct delivery ([delivery]), seeing each domain as the posture's verdict saw it."""
    delivery = settings.delivery
    if delivery.ca_file:
        delivery = replace(delivery, ca_file=str(settings.path(delivery.ca_file)))
    checker = posture.checker
    return MxTransport(delivery, checker, checker.resolver, hostname(settings))


def open_accounts(settings: Settings) -> Accounts:
    return Accounts(data_dir(settings) / USERS_DB)


@asynccontextmanager
async def review_session(settings: Settings) -> AsyncIterator[Review]:
    """The review model with its store and delivery, for the one-shot commands."""
    store = await open_store(settings)
    try:
        relay = open_relay(settings)
        try:
            name = hostname(settings)
            yield Review(settings, store, Delivery(relay, store, name), name)
        finally:
            await relay.close()
    finally:
        await store.close()
