"""A `gateway serve` of the tests on the shared store (PostgreSQL), and the store read back as
a reviewer sees it, whichever backend a gateway uses.

:class:`SharedStore` is one database of the rig's PostgreSQL server (rig.postgres) with the
keys every node of a test is given: the nodes of a deployment share the database and must share
the store and audit keys too, which never enter the database. :func:`migrate` applies the schema
as ``gateway store migrate`` would, before a node starts (a node refuses an empty database).
:func:`query` reads the store of a gateway: the SQLite file in its data_dir, or its database.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from gateway.store.postgres.database import Database, migrate
from gateway.store.postgres.tables import MIGRATIONS

# Fixed keys, the same for every node of a test (64 hex digits: 32 bytes each).
STORE_KEY = "5a" * 32
AUDIT_KEY = "a5" * 32
WEB_SECRET = "c3" * 32


@dataclass(frozen=True)
class SharedStore:
    """One PostgreSQL database for the nodes of a test, with their shared keys and timeouts."""

    dsn: str
    statement_timeout: str = "10s"
    connect_timeout: str = "2s"

    def sections(self) -> dict[str, dict[str, object]]:
        """The config tables that put a node on this store."""
        return {
            "store": {
                "backend": "postgresql",
                "dsn": self.dsn,
                "key": STORE_KEY,
                "statement_timeout": self.statement_timeout,
                "connect_timeout": self.connect_timeout,
            },
            "audit": {"key": AUDIT_KEY},
            "web": {"secret_key": WEB_SECRET},
        }

    @property
    def dbname(self) -> str:
        return self.dsn.rsplit("/", 1)[1]


def migrate_schema(dsn: str) -> None:
    """Bring the database to this release's schema (idempotent, as `gateway store migrate`)."""

    async def run() -> None:
        db = Database(dsn, pool_size=1, name="rig-migrate")
        await db.open()
        try:
            await migrate(db, MIGRATIONS)
        finally:
            await db.close()

    asyncio.run(run())


def node_connections(store: SharedStore) -> int:
    """How many connections gateway processes hold to the store's database right now."""
    with psycopg.connect(store.dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = %s AND application_name LIKE 'gateway-%%'"
            " AND application_name <> 'gateway-rig-migrate'",
            (store.dbname,),
        ).fetchone()
    return int(row[0]) if row else 0


def query(
    db_file: Path, store: SharedStore | None, sql: str, params: Sequence[object] = ()
) -> list[tuple[Any, ...]]:
    """The rows of ``sql`` (``?`` placeholders) from the SQLite file, or from ``store``'s
    database when there is one (``?`` becomes psycopg's ``%s``)."""
    if store is not None:
        with psycopg.connect(store.dsn, autocommit=True) as conn:
            return conn.execute(sql.replace("?", "%s").encode(), params).fetchall()
    if not db_file.exists():
        return []
    with contextlib.closing(sqlite3.connect(db_file, timeout=10)) as db:
        return db.execute(sql, params).fetchall()


def json_column(value: object) -> Any:
    """A JSON column: text in SQLite (and in PostgreSQL's text columns), decoded already
    from PostgreSQL's jsonb."""
    return json.loads(value) if isinstance(value, str | bytes) else value
