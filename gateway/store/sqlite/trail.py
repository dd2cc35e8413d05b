"""The audit trail's table: appending chained entries and reading them back, for SqliteStore.
Functions of a connection, run on the store's thread inside its transactions.

Entries are sealed with HMAC-SHA256 under the audit key (``core.auditchain``). A trail from
before the key keeps its entries as they were written: ``keying_migration`` appends one keyed
``chain-keyed`` entry naming the last of them, so their hashes (which a log may have witnessed)
stay valid and an edit of any of them shows. Re-sealing them instead would have vouched, under
the key, for whatever the table held at the upgrade, and changed hashes already witnessed.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from gateway import logs
from gateway.core import auditchain
from gateway.core.auditchain import Entry
from gateway.store import schema
from gateway.store.queries import AuditQuery
from gateway.store.records import AuditRecord
from gateway.store.sqlite import queries
from gateway.store.sqlite.database import Migration

_ENTRY = "seq, at, event, hold_id, actor, data, prev, hash"


def data_text(data: str) -> str:
    """The stored JSON with non-ASCII shown as itself, for word search (SQL ``data_text``)."""
    return json.dumps(json.loads(data), ensure_ascii=False)


def append(
    db: sqlite3.Connection, key: bytes, at: float, records: Sequence[AuditRecord]
) -> list[Entry]:
    """Append ``records`` to the chain; the caller holds the write transaction."""
    if not records:
        return []
    last = db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    seq, prev = (last[0], last[1]) if last else (0, auditchain.GENESIS)
    entries = []
    for record in records:
        seq += 1
        data = dict(record.data)
        # Encoded once: the MAC covers it, and the row keeps it (``schema.stored_data``).
        encoded = auditchain.encode_data(data)
        event, hold_id, actor = record.event, record.hold_id, record.actor
        entry = auditchain.seal(
            seq, at, event, hold_id, actor, data, prev, key=key, encoded=encoded
        )
        db.execute(
            "INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                entry.seq,
                entry.at,
                entry.event,
                entry.hold_id,
                entry.actor,
                schema.stored_data(encoded, data),
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


def verify(db: sqlite3.Connection, key: bytes) -> tuple[int, auditchain.Problem | None]:
    """How many entries, and the first that breaks the chain: streamed, never all in memory."""
    count = 0

    def stream() -> Iterator[Entry]:
        nonlocal count
        for row in db.execute(f"SELECT {_ENTRY} FROM audit ORDER BY seq"):  # noqa: S608
            count += 1
            yield _entries([row])[0]

    problem = auditchain.verify(stream(), key)
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


def entry(db: sqlite3.Connection, seq: int) -> Entry | None:
    rows = db.execute(f"SELECT {_ENTRY} FROM audit WHERE seq = ?", (seq,)).fetchall()  # noqa: S608
    return _entries(rows)[0] if rows else None


def keying_migration(key: bytes, clock: Callable[[], float]) -> Migration:
    """The schema step that keys the chain: a trail with entries gets its ``chain-keyed``
    entry (the recorded migration point); an empty one is keyed from its first entry."""

    def apply(db: sqlite3.Connection) -> None:
        last = head(db)
        if last is None:
            return
        marker = AuditRecord(
            auditchain.KEYED,
            "",
            "gateway",
            {"legacy_entries": last[0], "legacy_head": last[1], "rule": "hmac-sha256"},
        )
        [sealed] = append(db, key, clock(), [marker])
        logs.get("gateway.store").info(
            "audit chain keyed", legacy_entries=last[0], legacy_head=last[1], seq=sealed.seq
        )

    return apply
