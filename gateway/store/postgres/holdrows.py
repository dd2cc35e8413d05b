"""How a hold is written to and read from a row of ``holds`` on PostgreSQL, and its body to
``hold_bodies``. Async functions of a connection, run inside the caller's transaction.

The JSON is the embedded store's (``store.schema``); the recipients are ``jsonb`` so queries
can match them by containment. Free text goes through ``text_value`` (no U+0000).
"""

from __future__ import annotations

import json
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.types.json import Jsonb

from gateway.store import schema
from gateway.store.changes import HoldChange
from gateway.store.postgres.tables import text_value
from gateway.store.records import Hold, NewHold, Status

COLUMNS = (
    "id, key, status, created_at, sender, recipients, mail_options, size, client, message_id,"
    " findings, facts, subject, decided_at, decided_by, decision, escalated_at, purged_at,"
    " delivered, refused, last_error, attempt_at, attempt_by"
)
_INSERT = (
    "INSERT INTO holds (id, key, status, created_at, sender, recipients, mail_options, size,"
    " client, message_id, findings, facts, subject)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (key) DO NOTHING RETURNING id"
)


def values(hold_id: str, created_at: float, new: NewHold) -> tuple[Any, ...]:
    """The row of a new hold, as ``insert`` writes it (free text as PostgreSQL keeps it)."""
    return (
        hold_id,
        new.key,
        Status.HELD.value,
        created_at,
        text_value(new.sender),
        [_clean(schema.recipient_json(r)) for r in new.recipients],
        json.dumps(list(new.mail_options)),
        len(new.message),
        text_value(new.client),
        text_value(new.message_id),
        json.dumps(list(new.findings)),
        json.dumps(schema.facts_json(new.facts)),
        text_value(new.subject),
    )


def fresh(hold_id: str, created_at: float, new: NewHold) -> Hold:
    """The hold its row (``values``) reads back as once inserted, known before the
    transaction."""
    return schema.fresh_hold(hold_id, created_at, new, text_value)


async def insert(conn: AsyncConnection[Any], row: tuple[Any, ...], body: bytes) -> bool:
    """Insert the new hold (``values``) with its sealed body; False when a hold with its key
    exists already (an earlier delivery of the message, or another node's at this moment:
    the insert then waits for that node's transaction, PostgreSQL docs, INSERT "ON CONFLICT
    Clause")."""
    written = (*row[:5], Jsonb(row[5]), *row[6:])
    found = await (await conn.execute(_INSERT, written)).fetchone()
    if found is None:
        return False
    await conn.execute("INSERT INTO hold_bodies (hold_id, body) VALUES (%s, %s)", (row[0], body))
    return True


async def get(conn: AsyncConnection[Any], hold_id: str) -> Hold | None:
    cursor = await conn.execute(f"SELECT {COLUMNS} FROM holds WHERE id = %s", (hold_id,))  # noqa: S608
    found = await cursor.fetchone()
    return from_row(found) if found else None


async def by_key(conn: AsyncConnection[Any], key: str) -> Hold | None:
    cursor = await conn.execute(f"SELECT {COLUMNS} FROM holds WHERE key = %s", (key,))  # noqa: S608
    found = await cursor.fetchone()
    return from_row(found) if found else None


async def body(conn: AsyncConnection[Any], hold_id: str) -> bytes | None:
    cursor = await conn.execute("SELECT body FROM hold_bodies WHERE hold_id = %s", (hold_id,))
    found = await cursor.fetchone()
    return bytes(found[0]) if found else None


async def update(
    conn: AsyncConnection[Any], hold_id: str, expect: frozenset[Status], change: HoldChange
) -> Hold | None:
    """Compare and set: the change applies only while the status is one of ``expect`` (the
    row lock of the UPDATE makes a second node's attempt wait, then find the new status)."""
    columns = change_columns(change)
    assignments = sql.SQL(", ").join(
        sql.SQL("{} = %s").format(sql.Identifier(name)) for name in columns
    )
    statement = sql.SQL(
        "UPDATE holds SET {} WHERE id = %s AND status = ANY(%s) RETURNING {}"
    ).format(assignments, sql.SQL(COLUMNS))
    values = (*columns.values(), hold_id, sorted(s.value for s in expect))
    found = await (await conn.execute(statement, values)).fetchone()
    return from_row(found) if found else None


def change_columns(change: HoldChange) -> dict[str, Any]:
    """The columns a change writes, free text as PostgreSQL can keep it."""
    return schema.change_columns(change, text_value)


from_row = schema.hold_from_row


def _clean(value: Any) -> Any:
    """JSON for a jsonb column, which refuses U+0000 in its strings."""
    if isinstance(value, str):
        return text_value(value)
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    return value


async def claim(
    conn: AsyncConnection[Any],
    hold_id: str,
    owner: str,
    now: float,
    stale_before: float,
    dead_owner: str,
) -> Hold | None:
    """Take the right to deliver a release in one UPDATE: a second node's attempt waits on the
    row lock, then finds the claim fresh and changes nothing. Not "or it is ours": the web UI
    and the sweep of one process would both hold the claim at once, and both deliver."""
    cursor = await conn.execute(
        f"UPDATE holds SET attempt_at = %s, attempt_by = %s WHERE id = %s"  # noqa: S608
        " AND status = 'releasing' AND (attempt_at IS NULL OR attempt_at < %s"
        f" OR (%s != '' AND attempt_by = %s)) RETURNING {COLUMNS}",
        (now, owner, hold_id, stale_before, dead_owner, dead_owner),
    )
    found = await cursor.fetchone()
    return from_row(found) if found else None


async def purge_body(conn: AsyncConnection[Any], hold_id: str, now: float) -> bool:
    """Delete the body, mark the hold purged; True if there was a body."""
    cursor = await conn.execute(
        "DELETE FROM hold_bodies WHERE hold_id = %s RETURNING hold_id", (hold_id,)
    )
    existed = await cursor.fetchone() is not None  # a row: rowcount waits in a pipeline
    await conn.execute(
        "UPDATE holds SET purged_at = %s WHERE id = %s AND purged_at IS NULL", (now, hold_id)
    )
    return existed
