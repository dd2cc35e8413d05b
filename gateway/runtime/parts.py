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
from gateway.config.values import RelayTls
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


def open_store(settings: Settings) -> SqliteStore:
    folder = data_dir(settings)
    private_dir(folder)
    audit_key = load_audit_key(settings, folder)
    return SqliteStore(folder, Sealer(load_key(settings, folder)), audit_key=audit_key)


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
    store = open_store(settings)
    try:
        relay = open_relay(settings)
        try:
            name = hostname(settings)
            yield Review(settings, store, Delivery(relay, store, name), name)
        finally:
            await relay.close()
    finally:
        await store.close()
