"""The delivery queue's tables on PostgreSQL: ``queue`` (the entry, its recipients' states as
one JSON column, what the scheduler selects on as columns of their own) and ``queue_bodies``
(the sealed message, deleted in the transaction that finishes the entry). Async functions of a
connection, run inside the caller's transaction.

Claims are leases taken with ``FOR UPDATE SKIP LOCKED`` (PostgreSQL docs, SELECT "The Locking
Clause"): two nodes claiming at once get disjoint entries, and a node that dies leaves its
entries to the first node that looks after ``lease_until``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from psycopg import AsyncConnection

from gateway.store.ownership import owner_dead
from gateway.store.postgres.tables import text_value
from gateway.store.queued import NewQueued, Queued, QueuedRecipient, RecipientState
from gateway.store.sqlite.queue import entry_json
from gateway.store.sqlite.queue import from_row as _from_sqlite_row

COLUMNS = (
    "id, key, created_at, entry, attempts, next_at, last_error, lease_until, lease_by, done_at"
)
_INSERT = (
    "INSERT INTO queue (id, key, created_at, entry, next_at) VALUES (%s, %s, %s, %s, %s)"  # noqa: S608
    f" ON CONFLICT (key) DO NOTHING RETURNING {COLUMNS}"
)
_CLAIM = (
    "SELECT id FROM queue WHERE done_at IS NULL AND next_at <= %s"
    " AND (lease_until IS NULL OR lease_until < %s OR lease_by = ANY(%s))"
    " ORDER BY next_at LIMIT %s FOR UPDATE SKIP LOCKED"
)


async def insert(
    conn: AsyncConnection[Any], queue_id: str, now: float, new: NewQueued, body: bytes
) -> Queued | None:
    """The new entry, due now, with its sealed body; None when the key exists already."""
    # json.dumps escapes U+0000, so the text column takes any value the entry holds.
    cursor = await conn.execute(_INSERT, (queue_id, new.key, now, json.dumps(entry_json(new)), now))
    found = await cursor.fetchone()
    if found is None:
        return None
    await conn.execute(
        "INSERT INTO queue_bodies (queue_id, body) VALUES (%s, %s)", (queue_id, body)
    )
    return from_row(found)


async def get(conn: AsyncConnection[Any], queue_id: str, lock: bool = False) -> Queued | None:
    locking = " FOR UPDATE" if lock else ""
    sql = f"SELECT {COLUMNS} FROM queue WHERE id = %s{locking}"  # noqa: S608
    found = await (await conn.execute(sql, (queue_id,))).fetchone()
    return from_row(found) if found else None


async def by_key(conn: AsyncConnection[Any], key: str) -> Queued | None:
    sql = f"SELECT {COLUMNS} FROM queue WHERE key = %s"  # noqa: S608
    found = await (await conn.execute(sql, (key,))).fetchone()
    return from_row(found) if found else None


async def body(conn: AsyncConnection[Any], queue_id: str) -> bytes | None:
    cursor = await conn.execute("SELECT body FROM queue_bodies WHERE queue_id = %s", (queue_id,))
    found = await cursor.fetchone()
    return bytes(found[0]) if found else None


async def entries(conn: AsyncConnection[Any], finished: bool, limit: int) -> list[Queued]:
    where = "" if finished else " WHERE done_at IS NULL"
    sql = f"SELECT {COLUMNS} FROM queue{where} ORDER BY created_at, id LIMIT %s"  # noqa: S608
    return [from_row(row) for row in await (await conn.execute(sql, (limit,))).fetchall()]


async def claim(
    conn: AsyncConnection[Any], now: float, lease_until: float, owner: str, limit: int
) -> list[Queued]:
    """Due entries whose lease ran out (or whose claimer, a process of this host, is gone),
    leased to ``owner`` until ``lease_until``, earliest due first."""
    cursor = await conn.execute(
        "SELECT DISTINCT lease_by FROM queue WHERE done_at IS NULL AND lease_until >= %s",
        (now,),
    )
    dead = [row[0] for row in await cursor.fetchall() if row[0] and owner_dead(row[0])]
    cursor = await conn.execute(_CLAIM, (now, now, dead, limit))
    ids = [row[0] for row in await cursor.fetchall()]
    if not ids:
        return []
    cursor = await conn.execute(
        f"UPDATE queue SET lease_until = %s, lease_by = %s WHERE id = ANY(%s)"  # noqa: S608
        f" RETURNING {COLUMNS}",
        (lease_until, owner, ids),
    )
    taken = [from_row(row) for row in await cursor.fetchall()]
    return sorted(taken, key=lambda entry: (entry.next_at, entry.id))


async def progress(
    conn: AsyncConnection[Any],
    queue_id: str,
    owner: str,
    recipients: Sequence[QueuedRecipient],
    next_at: float,
    last_error: str,
    now: float,
) -> bool:
    """Write one attempt's outcome if ``owner`` still holds the lease; True if it did. A
    finished entry loses its body in the same transaction."""
    cursor = await conn.execute(
        "SELECT entry, lease_by FROM queue WHERE id = %s FOR UPDATE", (queue_id,)
    )
    found = await cursor.fetchone()
    if found is None or found[1] != owner:
        return False
    entry = json.loads(found[0])
    entry["recipients"] = [_recipient_json(r) for r in recipients]
    done = now if all(r.state is not RecipientState.PENDING for r in recipients) else None
    await conn.execute(
        "UPDATE queue SET entry = %s, attempts = attempts + 1, next_at = %s, last_error = %s,"
        " lease_until = NULL, lease_by = '', done_at = %s WHERE id = %s",
        (json.dumps(entry), next_at, text_value(last_error[:500]), done, queue_id),
    )
    if done is not None:
        await drop_body(conn, queue_id)
    return True


async def retry(conn: AsyncConnection[Any], queue_id: str, now: float) -> bool:
    cursor = await conn.execute(
        "UPDATE queue SET next_at = %s WHERE id = %s AND done_at IS NULL", (now, queue_id)
    )
    return cursor.rowcount == 1


async def purge(conn: AsyncConnection[Any], queue_id: str, now: float) -> bool:
    """Finish a waiting entry: its pending recipients purged, its body deleted, its lease
    ended (the lease holder's next progress is refused)."""
    cursor = await conn.execute(
        "SELECT entry FROM queue WHERE id = %s AND done_at IS NULL FOR UPDATE", (queue_id,)
    )
    found = await cursor.fetchone()
    if found is None:
        return False
    entry = json.loads(found[0])
    for recipient in entry["recipients"]:
        if recipient["state"] == RecipientState.PENDING.value:
            recipient["state"] = RecipientState.PURGED.value
            recipient["done_at"] = now
    await conn.execute(
        "UPDATE queue SET entry = %s, done_at = %s, lease_until = NULL, lease_by = ''"
        " WHERE id = %s",
        (json.dumps(entry), now, queue_id),
    )
    await drop_body(conn, queue_id)
    return True


async def drop_body(conn: AsyncConnection[Any], queue_id: str) -> None:
    await conn.execute("DELETE FROM queue_bodies WHERE queue_id = %s", (queue_id,))


async def prune(conn: AsyncConnection[Any], before: float) -> int:
    """Finished entries older than ``before`` and their journal rows (``queue:<id>:<domain>``,
    deliver.Delivery's keys); their bodies went when they finished."""
    cursor = await conn.execute(
        "DELETE FROM queue WHERE done_at IS NOT NULL AND done_at < %s RETURNING id", (before,)
    )
    ids = [row[0] for row in await cursor.fetchall()]
    if ids:
        await conn.execute(
            "DELETE FROM relay_journal WHERE key LIKE ANY(%s)",
            ([f"queue:{queue_id}:%" for queue_id in ids],),
        )
        await conn.execute("DELETE FROM queue_bodies WHERE queue_id = ANY(%s)", (ids,))
    return len(ids)


async def depth(conn: AsyncConnection[Any]) -> int:
    found = await (
        await conn.execute("SELECT count(*) FROM queue WHERE done_at IS NULL")
    ).fetchone()
    return int(found[0]) if found else 0


async def next_due(conn: AsyncConnection[Any]) -> float | None:
    cursor = await conn.execute("SELECT min(next_at) FROM queue WHERE done_at IS NULL")
    found = await cursor.fetchone()
    return float(found[0]) if found and found[0] is not None else None


def from_row(row: tuple[Any, ...]) -> Queued:
    """The same columns and JSON as the embedded queue's rows."""
    return _from_sqlite_row(row)


def _recipient_json(recipient: QueuedRecipient) -> dict[str, Any]:
    return {
        "address": recipient.address,
        "domain": recipient.domain,
        "options": list(recipient.options),
        "state": recipient.state.value,
        "reply": recipient.reply,
        "stage": recipient.stage,
        "hosts": list(recipient.hosts),
        "done_at": recipient.done_at,
        "proof": dict(recipient.proof),
    }
