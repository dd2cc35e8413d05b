"""The two backends of the account and policy stores, for tests that run on both: the embedded
SQLite files and the shared PostgreSQL database of the rig (a fresh, migrated database per
test; each ``PgAccounts`` or pool opened on it stands for another node)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gateway.accounts.users import USERS_DB
from gateway.store.accountstore import AccountStore
from gateway.store.postgres.accounts import PgAccounts
from gateway.store.postgres.database import Database, SyncDatabase, migrate
from gateway.store.postgres.tables import MIGRATIONS
from gateway.store.sqlite.accounts import accounts_store

BACKENDS = ("sqlite", "postgresql")


def migrate_now(dsn: str) -> None:
    """Apply the schema, from synchronous code (a thread of its own has no event loop)."""

    async def run() -> None:
        db = Database(dsn, pool_size=1, name="test-migrate")
        await db.open()
        try:
            await migrate(db, MIGRATIONS)
        finally:
            await db.close()

    failed: list[BaseException] = []

    def work() -> None:
        try:
            asyncio.run(run())
        except BaseException as exc:  # reraised below, in the test's thread
            failed.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    if failed:
        raise failed[0]


@pytest.fixture(params=BACKENDS)
def either_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def either_dsn(either_backend: str, request: pytest.FixtureRequest) -> str:
    """On PostgreSQL the migrated database's DSN; on SQLite ""."""
    if either_backend == "sqlite":
        return ""
    dsn = str(request.getfixturevalue("pg_dsn"))
    migrate_now(dsn)
    return dsn


@pytest.fixture
def open_records(either_dsn: str, tmp_path: Path) -> Iterator[Callable[[], AccountStore]]:
    """Opens the account store of one more node (on SQLite the process's one file)."""
    opened: list[PgAccounts] = []

    def another() -> AccountStore:
        if not either_dsn:
            return accounts_store(tmp_path / "data" / USERS_DB)
        records = PgAccounts(SyncDatabase(either_dsn, pool_size=4))
        opened.append(records)
        return records

    try:
        yield another
    finally:
        for records in opened:
            records.close()


@pytest.fixture
def records(open_records: Callable[[], AccountStore]) -> AccountStore:
    return open_records()
