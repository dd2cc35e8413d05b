"""The hold store's two backends, for the tests that hold both to one contract.

``hold_store`` is a ready ``HoldStore``, once on SQLite (a data directory of its own) and once on
PostgreSQL (a migrated database of its own on the rig's server), with the same sealing key,
audit key and clock. ``store_nodes`` makes more stores on the same data: each ``await
store_nodes.node()`` is another node (on PostgreSQL its own pool, as another machine would
have; on SQLite another connection to the same files, as a second process would have).
``store_nodes.sql(...)`` runs one statement on the data behind the stores' backs (a tampered
row, a look at a table), in the SQL both backends speak.

Imported by tests/conftest.py, so every test folder can ask for them.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

from gateway.store import HeldRecipient, HoldStore, NewHold
from gateway.store.crypto import Sealer
from gateway.store.postgres.database import Database, migrate
from gateway.store.postgres.tables import MIGRATIONS
from gateway.store.sqlite import HELD_DB, SqliteStore
from support.fakes import FakeClock

BACKENDS = ("sqlite", "postgresql")
SEALING_KEY = b"k" * 32
AUDIT_KEY = bytes(range(32))
MESSAGE = b"From: head@school.test\r\nSubject: Referral\r\nX-Safeguarding: yes\r\n\r\nBody\r\n"


@dataclass
class Nodes:
    """The stores of one test, all on the same data; closed when the test ends."""

    backend: str
    folder: Path
    dsn: str
    clock: FakeClock
    opened: list[HoldStore] = field(default_factory=list)

    async def node(self, clock: Callable[[], float] | None = None, pool_size: int = 4) -> HoldStore:
        """Another node on the same data, with the shared keys and (by default) clock."""
        ticks = clock if clock is not None else self.clock
        store: HoldStore
        if self.backend == "sqlite":
            store = SqliteStore(self.folder, Sealer(SEALING_KEY), ticks, audit_key=AUDIT_KEY)
        else:
            from gateway.store.postgres.store import PgStore

            name = f"node-{len(self.opened) + 1}"
            pg = PgStore(
                Database(self.dsn, pool_size=pool_size, name=name),
                Sealer(SEALING_KEY),
                AUDIT_KEY,
                ticks,
            )
            await pg.open()
            store = pg
        self.opened.append(store)
        return store

    async def sql(self, statement: str) -> list[tuple[Any, ...]]:
        """Run one statement (no parameters) straight on the database; its rows, if any."""
        if self.backend == "sqlite":
            with sqlite3.connect(self.folder / HELD_DB, isolation_level=None) as db:
                return db.execute(statement).fetchall()
        async with await psycopg.AsyncConnection.connect(self.dsn, autocommit=True) as conn:
            cursor = await conn.execute(statement.encode())
            return await cursor.fetchall() if cursor.description else []

    async def close(self) -> None:
        for store in reversed(self.opened):
            await store.close()
        self.opened.clear()


async def migrated(dsn: str) -> None:
    db = Database(dsn, name="migrate")
    await db.open()
    try:
        await migrate(db, MIGRATIONS)
    finally:
        await db.close()


@pytest.fixture(params=BACKENDS)
def hold_backend(request: pytest.FixtureRequest) -> str:
    """The backend's name; the PostgreSQL server starts only for the tests that use it."""
    return str(request.param)


@pytest.fixture
async def store_nodes(
    hold_backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Nodes]:
    dsn = ""
    if hold_backend == "postgresql":
        dsn = request.getfixturevalue("pg_dsn")
        await migrated(dsn)
    folder = tmp_path / "data"
    folder.mkdir()
    nodes = Nodes(hold_backend, folder, dsn, FakeClock(1_800_000_000.0))
    try:
        yield nodes
    finally:
        await nodes.close()


@pytest.fixture
async def hold_store(store_nodes: Nodes) -> HoldStore:
    """The first node of ``store_nodes``."""
    return await store_nodes.node()


def new_hold(
    key: str = "",
    sender: str = "head@school.test",
    to: tuple[str, ...] = ("officer@nosts.test",),
    reasons: tuple[str, ...] = ("sts-no-record",),
    message: bytes = MESSAGE,
) -> NewHold:
    """A message held for its recipients, under ``key`` (a fresh one by default)."""
    recipients = tuple(HeldRecipient(a, a.rpartition("@")[2], reasons) for a in to)
    return NewHold(
        key=key or f"test:{time.monotonic_ns()}",
        sender=sender,
        recipients=recipients,
        mail_options=(),
        message=message,
        client="127.0.0.1",
        message_id="<test@school.test>",
        findings=("header",),
    )
