"""The audit trail's table: appending chained entries and reading them back, for SqliteStore.
Functions of a connection, run on the store's thread inside its transactions."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

from gateway.core import auditchain
from gateway.core.auditchain import Entry
from gateway.store.queries import AuditQuery
from gateway.store.records import AuditRecord
from gateway.store.sqlite import queries

_ENTRY = "seq, at, event, hold_id, actor, data, prev, hash"


def data_text(data: str) -> str:
    """The stored JSON with non-ASCII shown as itself, for word search (SQL ``data_text``)."""
    return json.dumps(json.loads(data), ensure_ascii=False)


def append(db: sqlite3.Connection, at: float, records: Sequence[AuditRecord]) -> list[Entry]:
    """Append ``records`` to the chain; the caller holds the write transaction."""
    if not records:
        return []
    last = db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    seq, prev = (last[0], last[1]) if last else (0, auditchain.GENESIS)
    entries = []
    for record in records:
        seq += 1
        data = dict(record.data)
        entry = auditchain.seal(seq, at, record.event, record.hold_id, record.actor, data, prev)
        db.execute(
            "INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                entry.seq,
                entry.at,
                entry.event,
                entry.hold_id,
                entry.actor,
                json.dumps(data, sort_keys=True),
                entry.prev,
                entry.hash,
            ),
        )
        prev = entry.hash
        entries.append(entry)
    return entries


def _entries(rows: Any) -> list[Entry]:
    return [
        Entry(seq, at, event, hold_id, actor, json.loads(data), prev, digest)
        for seq, at, event, hold_id, actor, data, prev, digest in rows
    ]


def since(db: sqlite3.Connection, at: float | None) -> list[Entry]:
    rows = db.execute(
        f"SELECT {_ENTRY} FROM audit WHERE at >= ? ORDER BY seq",  # noqa: S608
        (at if at is not None else float("-inf"),),
    )
    return _entries(rows)


def verify(db: sqlite3.Connection) -> tuple[int, auditchain.Problem | None]:
    """How many entries, and the first that breaks the chain: streamed, never all in memory."""
    count = 0

    def stream() -> Iterator[Entry]:
        nonlocal count
        for row in db.execute(f"SELECT {_ENTRY} FROM audit ORDER BY seq"):  # noqa: S608
            count += 1
            yield _entries([row])[0]

    problem = auditchain.verify(stream())
    if problem is not None:
        count = int(db.execute("SELECT count(*) FROM audit").fetchone()[0])
    return count, problem


def select(db: sqlite3.Connection, query: AuditQuery) -> list[Entry]:
    sql, values = queries.select_audit(_ENTRY, query)
    return _entries(db.execute(sql, values))


def count(db: sqlite3.Connection, query: AuditQuery) -> int:
    sql, values = queries.count_audit(query)
    return int(db.execute(sql, values).fetchone()[0])


def events(db: sqlite3.Connection) -> list[str]:
    return [str(row[0]) for row in db.execute("SELECT DISTINCT event FROM audit ORDER BY 1")]


def head(db: sqlite3.Connection) -> tuple[int, str] | None:
    found = db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    return (int(found[0]), str(found[1])) if found else None
