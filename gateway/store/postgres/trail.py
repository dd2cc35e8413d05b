"""The audit trail's table on PostgreSQL: appending chained entries and reading them back.
Async functions of a connection, run inside the caller's transaction.

Every node appends to one chain. ``append`` first takes the audit advisory lock
(``pg_advisory_xact_lock``, PostgreSQL docs §9.27.10 "Advisory Lock Functions"), held until the
transaction ends: the next appender, on any node, reads the head only after this one committed
or rolled back, so no two entries ever share a number or a predecessor.

The head is read by a second statement, after the one that takes the lock: under READ
COMMITTED each statement starts with a new snapshot (PostgreSQL docs §13.2.1 "Read Committed
Isolation Level"), so it is taken once the lock is granted and sees the previous holder's
entries (one statement doing both would read the head as it was before the wait). In a
pipeline (``Database.write``) the two go in one round trip, and the insert with the COMMIT in
one more: the lock is held over two round trips.

``data`` is stored as sealed (``schema.stored_data``: the canonical text, non-ASCII escaped,
so U+0000 and lone surrogates stay printable text). Word search reads ``search``, written here
at append time: the entry's event, hold, actor and data as shown (non-ASCII as itself), lower
case. Computing it in SQL would need ``data::jsonb``, which refuses the ``\\u0000`` a hostile
header can put in the data, and fails the whole query with it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from psycopg import AsyncConnection

from gateway.core import auditchain
from gateway.core.auditchain import Entry
from gateway.store import schema
from gateway.store.postgres import queries
from gateway.store.postgres.database import AUDIT_LOCK, GATEWAY_LOCKS
from gateway.store.postgres.tables import text_value
from gateway.store.queries import AuditQuery
from gateway.store.records import AuditRecord

_ENTRY = "seq, at, event, hold_id, actor, data, prev, hash"
_INSERT = (
    "INSERT INTO audit (seq, at, event, hold_id, actor, data, prev, hash, search)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
_BATCH = 1000  # rows a verify fetches at a time


def searchable(event: str, hold_id: str, actor: str, data: Mapping[str, Any]) -> str:
    """The text word search looks in, as the embedded store's ``data_text`` shows it."""
    shown = json.dumps(data, sort_keys=True, ensure_ascii=False)
    text = f"{event} {hold_id} {actor} {shown}".lower()
    return queries.search_text(text)


async def append(
    conn: AsyncConnection[Any], key: bytes, at: float, records: Sequence[AuditRecord]
) -> list[Entry]:
    """Append ``records`` to the chain, after taking the audit lock for this transaction: the
    transaction's last statements (the lock is held until it ends)."""
    if not records:
        return []
    await conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (GATEWAY_LOCKS, AUDIT_LOCK))
    last = await head(conn)  # in a pipeline, read with the lock's reply
    seq, prev = last if last else (0, auditchain.GENESIS)
    entries: list[Entry] = []
    texts: list[str] = []
    for record in records:
        seq += 1
        data = dict(record.data)
        # Sealed as stored: an actor typed into the sign-in form may hold U+0000, which a
        # text column refuses (the data is JSON text, where it is an escape).
        event, hold_id, actor = (
            text_value(v) for v in (record.event, record.hold_id, record.actor)
        )
        # Encoded once: the MAC covers it, and the row keeps it (``schema.stored_data``).
        encoded = auditchain.encode_data(data)
        entry = auditchain.seal(
            seq, at, event, hold_id, actor, data, prev, key=key, encoded=encoded
        )
        prev = entry.hash
        entries.append(entry)
        texts.append(schema.stored_data(encoded, data))
    await insert(conn, entries, texts)
    return entries


async def insert(
    conn: AsyncConnection[Any], entries: Sequence[Entry], texts: Sequence[str] = ()
) -> None:
    """Write entries already sealed (``append``'s, with their data as stored, or a trail
    copied from another store)."""
    stored = texts or [schema.stored_data(auditchain.encode_data(e.data), e.data) for e in entries]
    rows = [
        (
            e.seq,
            e.at,
            e.event,
            e.hold_id,
            e.actor,
            text,
            e.prev,
            e.hash,
            searchable(e.event, e.hold_id, e.actor, e.data),
        )
        for e, text in zip(entries, stored, strict=True)
    ]
    async with conn.cursor() as cursor:
        await cursor.executemany(_INSERT, rows)


def _entry(row: Sequence[Any]) -> Entry:
    seq, at, event, hold_id, actor, data, prev, digest = row
    return Entry(seq, at, event, hold_id, actor, json.loads(data), prev, digest)


async def since(conn: AsyncConnection[Any], at: float | None) -> list[Entry]:
    cursor = await conn.execute(
        f"SELECT {_ENTRY} FROM audit WHERE at >= %s ORDER BY seq",  # noqa: S608
        (at if at is not None else float("-inf"),),
    )
    return [_entry(row) for row in await cursor.fetchall()]


async def verify(conn: AsyncConnection[Any], key: bytes) -> tuple[int, auditchain.Problem | None]:
    """How many entries, and the first that breaks the chain. The rows come through a
    server-side cursor (PostgreSQL docs §43.7 "Cursors"), a batch at a time, never all in
    memory; the MACs are checked on a worker thread that asks the loop for each batch."""
    loop = asyncio.get_running_loop()
    count = 0
    async with conn.cursor(name="audit_verify") as cursor:
        await cursor.execute(f"SELECT {_ENTRY} FROM audit ORDER BY seq")  # noqa: S608

        def stream() -> Iterator[Entry]:
            nonlocal count
            while True:
                rows = asyncio.run_coroutine_threadsafe(cursor.fetchmany(_BATCH), loop).result()
                if not rows:
                    return
                count += len(rows)
                yield from (_entry(row) for row in rows)

        problem = await asyncio.to_thread(auditchain.verify, stream(), key)
    if problem is not None:
        found = await (await conn.execute("SELECT count(*) FROM audit")).fetchone()
        count = int(found[0]) if found else 0
    return count, problem


async def select(conn: AsyncConnection[Any], query: AuditQuery) -> list[Entry]:
    sql, values = queries.select_audit(_ENTRY, query)
    cursor = await conn.execute(sql, values)
    return [_entry(row) for row in await cursor.fetchall()]


async def count(conn: AsyncConnection[Any], query: AuditQuery) -> int:
    sql, values = queries.count_audit(query)
    found = await (await conn.execute(sql, values)).fetchone()
    return int(found[0]) if found else 0


async def events(conn: AsyncConnection[Any]) -> list[str]:
    cursor = await conn.execute("SELECT DISTINCT event FROM audit")
    return sorted(str(row[0]) for row in await cursor.fetchall())


async def head(conn: AsyncConnection[Any]) -> tuple[int, str] | None:
    cursor = await conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
    found = await cursor.fetchone()
    return (int(found[0]), str(found[1])) if found else None


async def entry(conn: AsyncConnection[Any], seq: int) -> Entry | None:
    cursor = await conn.execute(f"SELECT {_ENTRY} FROM audit WHERE seq = %s", (seq,))  # noqa: S608
    found = await cursor.fetchone()
    return _entry(found) if found else None
