"""The builders of the gateway's parts, from the settings: the only place that constructs them.

`gateway serve`, `gateway web` and the one-shot commands (`gateway held`, `gateway users`,
`gateway check`, `gateway sts-cache`) all take their store, relay, posture and accounts from here,
so each part is built one way. Each builder raises ConfigError for a bad setting and OSError
for what the system refuses (a data directory that cannot be created), before anything runs.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
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
from gateway.posture.fetchlock import FetchLocks, FileLocks
from gateway.posture.stsfetch import PolicyFetcher, default_client, tls_context
from gateway.review.model import Review
from gateway.store.auditkey import load_audit_key
from gateway.store.crypto import load_sealer
from gateway.store.policycache import PolicyDb
from gateway.store.postgres import PgStore
from gateway.store.postgres.accounts import PgAccounts
from gateway.store.postgres.database import Database, SyncDatabase, describe
from gateway.store.postgres.locks import AdvisoryLocks
from gateway.store.postgres.policycache import PgPolicyCache
from gateway.store.protocols import HoldStore, PolicyCache
from gateway.store.safeio import private_dir
from gateway.store.sqlite import SqliteStore
from gateway.store.sqlite.accounts import accounts_store

POLICY_DB = "sts-cache.sqlite3"
# Concurrent MTA-STS policy fetches, for all worker processes together.
FETCH_CONCURRENCY = 16


def data_dir(settings: Settings) -> Path:
    return settings.path(settings.store.data_dir)


def hostname(settings: Settings) -> str:
    # socket.gethostname, not getfqdn: getfqdn asks DNS, behind the operator's back.
    return settings.smtp.hostname or socket.gethostname()


def load_allowlist(settings: Settings) -> allowlists.Loaded:
    return allowlists.load_configured(settings.allowlist.paths, settings.base_dir)


def missing_data_dir(settings: Settings) -> Path | None:
    """The SQLite data directory when it does not exist, else None. The commands that only
    read refuse rather than make it: a new, empty one would answer "no holds" for a store
    that is somewhere else (a command run from another folder, without the configuration)."""
    if _shared(settings):
        return None
    folder = data_dir(settings)
    return None if folder.is_dir() else folder


def _shared(settings: Settings) -> bool:
    return settings.store.backend is StoreBackend.POSTGRESQL


def _database(settings: Settings, name: str, pool_size: int | None = None) -> Database:
    store = settings.store
    return Database(
        store.dsn.reveal(),
        pool_size=pool_size or store.pool_size,
        statement_timeout=store.statement_timeout,
        connect_timeout=store.connect_timeout,
        name=name,
    )


async def open_policy_cache(settings: Settings) -> PolicyCache:
    """The MTA-STS policy cache: a file in the data directory, or the shared database (opened
    now: StoreUnavailable, SchemaMismatch)."""
    if not _shared(settings):
        return PolicyDb(data_dir(settings) / POLICY_DB)
    cache = PgPolicyCache(_database(settings, "policy-cache"))
    await cache.open()
    return cache


async def _open_fetch_locks(settings: Settings, parts: AsyncExitStack) -> FetchLocks | None:
    """One policy fetch per domain: across nodes (advisory locks) on PostgreSQL, even with one
    worker, since the other nodes fetch too; across the workers of this host (file locks) on
    SQLite with several workers; else the checker's own single flight is enough."""
    workers = settings.smtp.workers
    if _shared(settings):
        # Its own pool: a lock holds its connection for the whole fetch, and must not starve
        # the cache reads the fetch makes meanwhile.
        db = _database(settings, "fetch-locks", max(1, FETCH_CONCURRENCY // workers))
        await db.open(wait=False)
        parts.push_async_callback(db.close)
        return AdvisoryLocks(db)
    if workers <= 1:
        return None
    folder = data_dir(settings) / "sts-locks"
    private_dir(folder)
    return FileLocks(folder)


@asynccontextmanager
async def open_posture(
    settings: Settings, allowlist: Allowlist | allowlists.InForce, *, memo: bool = True
) -> AsyncIterator[Posture]:
    """The posture of recipient domains: one resolver, the policy fetcher and its cache;
    ``memo=False`` checks every domain afresh (a person asking, as `gateway check`)."""
    ca_file = settings.path(settings.mta_sts.ca_file) if settings.mta_sts.ca_file else None
    resolver = DnsResolver(settings.dns)
    workers = settings.smtp.workers
    async with AsyncExitStack() as parts:
        locks = await _open_fetch_locks(settings, parts)
        cache = await open_policy_cache(settings)
        parts.push_async_callback(cache.close)
        client = await parts.enter_async_context(
            default_client(tls_context(ca_file), settings.mta_sts.fetch_timeout)
        )
        fetcher = PolicyFetcher(
            resolver, settings.mta_sts, client, max_concurrency=max(1, FETCH_CONCURRENCY // workers)
        )
        checker = DomainChecker(
            resolver,
            fetcher,
            cache,
            locks=locks,
            lock_timeout=settings.mta_sts.fetch_timeout * 2,
            memo_seconds=settings.dns.facts_cache_seconds if memo else 0.0,
        )
        yield Posture(settings, allowlist, checker)


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
        shared = PgStore(db, load_sealer(settings, folder), load_audit_key(settings, folder))
        await shared.open()
        return shared
    private_dir(folder)
    audit_key = load_audit_key(settings, folder)
    return SqliteStore(folder, load_sealer(settings, folder), audit_key=audit_key)


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
    """The accounts, the throttle's failures and the web sessions (``Accounts.records``):
    the process's one ``users.sqlite3`` in the data directory, or the shared database on a
    pool of this caller's own, which ``Accounts.close`` gives back."""
    if not _shared(settings):
        return Accounts(accounts_store(data_dir(settings) / USERS_DB))
    store = settings.store
    records = PgAccounts(
        SyncDatabase(
            store.dsn.reveal(),
            pool_size=store.pool_size,
            statement_timeout=store.statement_timeout,
            connect_timeout=store.connect_timeout,
        )
    )
    return Accounts(records, on_close=records.close)


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
