"""`gateway store ...`: the store's life from the shell.

``migrate`` brings the schema up to this release's (PostgreSQL: before the first start and
after each upgrade; SQLite migrates itself at open), ``status`` says which store, where, its
schema and what it holds, and ``copy --to DSN`` moves this configuration's single-node SQLite
install into a PostgreSQL database. A DSN is shown only without its password (``describe``).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

from gateway.accounts.users import USERS_DB
from gateway.cli import lifecycle
from gateway.cli.exits import EXIT_FINDING, EXIT_OK, EXIT_USAGE
from gateway.config.settings import Settings
from gateway.config.values import StoreBackend
from gateway.runtime.parts import POLICY_DB, data_dir, open_store, store_location
from gateway.store.auditkey import KEY_FILE as AUDIT_KEY_FILE
from gateway.store.auditkey import load_audit_key
from gateway.store.crypto import KEY_FILE as STORE_KEY_FILE
from gateway.store.postgres import SCHEMA_VERSION, Database, SyncDatabase
from gateway.store.postgres.copy import CopyRefused, CopyReport, Install, copy_install
from gateway.store.postgres.database import describe, migrate, schema_version
from gateway.store.postgres.tables import MIGRATIONS
from gateway.store.protocols import HoldStore
from gateway.store.queries import AuditQuery, HoldQuery
from gateway.store.records import Status
from gateway.store.sqlite import HELD_DB, SqliteStore
from gateway.store.sqlite import tables as sqlite_tables

DSN_ENV = "GATEWAY_STORE_DSN"


def add_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "store", parents=[common], help="the store's schema, copy, backup, restore and keys"
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser(
        "migrate", parents=[common], help="bring the store's schema up to this release's"
    ).set_defaults(run=run_migrate)
    actions.add_parser(
        "status", parents=[common], help="which store, where, its schema and what it holds"
    ).set_defaults(run=run_status)
    copy = actions.add_parser(
        "copy",
        parents=[common],
        help="copy this SQLite install into PostgreSQL (stop the gateway first)",
    )
    copy.add_argument(
        "--to",
        metavar="DSN",
        default=None,
        help=f"the PostgreSQL database (default: ${DSN_ENV}); keep the password out of it",
    )
    copy.set_defaults(run=run_copy)
    lifecycle.add_commands(actions, common)


def _database(settings: Settings, dsn: str, name: str) -> Database:
    store = settings.store
    return Database(
        dsn,
        pool_size=1,
        statement_timeout=max(store.statement_timeout, 60.0),  # a migration may take longer
        connect_timeout=store.connect_timeout,
        name=name,
    )


def run_migrate(args: argparse.Namespace, settings: Settings) -> int:
    if settings.store.backend is StoreBackend.SQLITE:
        asyncio.run(_open_and_close(settings))
        print(f"SQLite in {data_dir(settings)}: its schema is brought up to date when it is opened")
        return EXIT_OK
    before, after = asyncio.run(_migrate(settings, settings.store.dsn.reveal()))
    print(f"schema at version {after} (was {before})")
    return EXIT_OK


async def _open_and_close(settings: Settings) -> None:
    store = await open_store(settings)
    await store.close()


async def _migrate(settings: Settings, dsn: str) -> tuple[int, int]:
    db = _database(settings, dsn, "migrate")
    await db.open()
    try:
        return await migrate(db, MIGRATIONS)
    finally:
        await db.close()


def run_status(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(_status(settings))


async def _status(settings: Settings) -> int:
    print(f"backend: {settings.store.backend.value}")
    print(f"where: {store_location(settings).partition(' ')[2]}")
    if settings.store.backend is StoreBackend.POSTGRESQL:
        db = _database(settings, settings.store.dsn.reveal(), "status")
        await db.open()
        try:
            async with db.transaction() as conn:
                found = await schema_version(conn)
        finally:
            await db.close()
        print(f"schema: version {found} (this release knows {SCHEMA_VERSION})")
        if found != SCHEMA_VERSION:
            print("run `gateway store migrate`" if found < SCHEMA_VERSION else "upgrade this node")
            return EXIT_FINDING
    store = await open_store(settings)
    try:
        if isinstance(store, SqliteStore):
            found = int(store.connection.execute("PRAGMA user_version").fetchone()[0])
            known = len(sqlite_tables.migrations(b"", time.time))
            print(f"schema: version {found} (this release knows {known})")
        await _counts(store)
    finally:
        await store.close()
    return EXIT_OK


async def _counts(store: HoldStore) -> None:
    held = await store.count_holds(HoldQuery.of(Status.HELD))
    print(f"holds: {await store.count_holds(HoldQuery())} ({held} waiting for review)")
    print(f"queued: {await store.queue_depth()} waiting for delivery")
    print(f"audit entries: {await store.count_audit(AuditQuery())}")


def run_copy(args: argparse.Namespace, settings: Settings) -> int:
    if settings.store.backend is not StoreBackend.SQLITE:
        print(
            "gateway: store copy reads this configuration's SQLite install: run it with the"
            " single node's configuration (backend = sqlite)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    dsn = args.to or settings.store.dsn.reveal()  # [store] dsn: also GATEWAY_STORE_DSN
    if not dsn:
        print(f"gateway: give the database: --to DSN or {DSN_ENV}", file=sys.stderr)
        return EXIT_USAGE
    folder = data_dir(settings)
    asyncio.run(_open_and_close(settings))  # its own migrations first: the current tables
    audit_key = load_audit_key(settings, folder)
    before, after = asyncio.run(_migrate(settings, dsn))
    print(f"copying {folder} to {describe(dsn)} (schema at version {after}, was {before})")
    install = Install(
        held_db=folder / HELD_DB,
        held_dir=folder / "held",
        queue_dir=folder / "queue",
        policy_db=folder / POLICY_DB,
        users_db=folder / USERS_DB,
    )
    db = SyncDatabase(dsn, pool_size=1, connect_timeout=settings.store.connect_timeout, name="copy")
    try:
        report = copy_install(install, db, audit_key)
    except CopyRefused as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return EXIT_FINDING
    finally:
        db.close()
    _summary(report)
    if not report.complete:
        return EXIT_FINDING
    _keys_hint(settings)
    return EXIT_OK


def _summary(report: CopyReport) -> None:
    for name, counts in report.tables.items():
        print(
            f"{name}: {counts.source} in the install, {counts.copied} copied now,"
            f" {counts.target} in the database"
        )
    for hold_id in report.bodies_missing:
        print(f"gateway: {hold_id}: its sealed body was missing; the row was copied without it")
    audit = report.tables.get("audit")
    entries = audit.target if audit else 0
    if report.audit_problem is not None:
        print(f"gateway: the copied audit trail does not verify: {report.audit_problem}")
    elif audit is not None and audit.source != audit.target:
        print(f"gateway: the database has {audit.target} audit entries, the install {audit.source}")
    else:
        print(f"audit trail: {entries} entries copied, the chain verified under the audit key")


def _keys_hint(settings: Settings) -> None:
    """The nodes need this install's keys: name the files a default install made."""
    folder = data_dir(settings)
    for section, given, file in (
        ("store", settings.store.key or settings.store.key_file, STORE_KEY_FILE),
        ("audit", settings.audit.key or settings.audit.key_file, AUDIT_KEY_FILE),
    ):
        if not given:
            print(
                f"give every node this install's {section} key:"
                f" {section}.key_file = {folder / file}"
            )
    print('then set [store] backend = "postgresql" and the dsn on every node')
