"""The outbox's table on PostgreSQL: notices queued with what caused them, claimed, sent or
failed. Async functions of a connection, run inside the caller's transaction.

A claim is a lease: the claimed rows get ``next_at = now + NOTICE_LEASE`` and the claimer's
name, and a node that dies before sending leaves them to whichever node looks once the lease
has run out. Claiming takes the due rows ``FOR UPDATE SKIP LOCKED`` (PostgreSQL docs, SELECT
"The Locking Clause"), so two nodes claiming at once never pick the same notice.

A notice is sent once by its "sent" mark, committed with its audit entry as soon as the
upstream has taken it: the mark is its journal. (A relay journal write before the mark only
stood where the mark stands, one more commit per notice.) The journal's rows an earlier
version wrote for a notice are still read, with the claim, in its transaction.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from typing import Any

from psycopg import AsyncConnection

from gateway.store.crypto import Sealer
from gateway.store.ownership import owner_dead, process_owner
from gateway.store.postgres.tables import text_value
from gateway.store.records import NewNotice, Notice, notice_key

# How long a node may take to send the notices it claimed before another may send them.
NOTICE_LEASE = 300.0

_INSERT = (
    "INSERT INTO outbox (id, kind, hold_id, sender, recipients, message, created_at, next_at)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
)
_CLAIM = (
    "SELECT id, hold_id FROM outbox"
    " WHERE sent_at IS NULL AND (next_at <= %s OR claimed_by = ANY(%s))"
    " ORDER BY created_at, seq LIMIT %s FOR UPDATE SKIP LOCKED"
)
# The rest of the claimed holds' due notices, past the limit.
_CLAIM_REST = (
    "SELECT id FROM outbox WHERE sent_at IS NULL AND hold_id = ANY(%s) AND id <> ALL(%s)"
    " AND (next_at <= %s OR claimed_by = ANY(%s)) FOR UPDATE SKIP LOCKED"
)
_TAKE = (
    "UPDATE outbox SET next_at = %s, claimed_by = %s WHERE id = ANY(%s)"
    " RETURNING id, kind, hold_id, sender, recipients, message, attempts, created_at, seq"
)


async def enqueue(
    conn: AsyncConnection[Any], sealer: Sealer, now: float, notices: Sequence[NewNotice]
) -> None:
    await insert(conn, sealed(sealer, now, notices))


def sealed(sealer: Sealer, now: float, notices: Sequence[NewNotice]) -> list[tuple[Any, ...]]:
    """The notices' rows, each message sealed under its own id (a notice may name people):
    made before the transaction, which then only inserts them (``insert``)."""
    rows = []
    for notice in notices:
        notice_id = secrets.token_hex(8)
        rows.append(
            (
                notice_id,
                notice.kind,
                notice.hold_id,
                text_value(notice.sender),
                json.dumps(list(notice.recipients)),
                sealer.seal(f"notice:{notice_id}", notice.message),
                now,
                now,
            )
        )
    return rows


async def insert(conn: AsyncConnection[Any], rows: Sequence[tuple[Any, ...]]) -> None:
    if rows:
        async with conn.cursor() as cursor:
            await cursor.executemany(_INSERT, rows)


async def claim_due(conn: AsyncConnection[Any], now: float, limit: int) -> list[tuple[Any, ...]]:
    """Notices due for sending (or claimed by a process of this host that is gone), leased
    to this process for NOTICE_LEASE seconds, oldest first, each hold's all together."""
    cursor = await conn.execute(
        "SELECT DISTINCT claimed_by FROM outbox"
        " WHERE sent_at IS NULL AND claimed_by != '' AND next_at > %s",
        (now,),
    )
    # Only a process of this host can be seen gone (ownership.owner_dead); across hosts the
    # lease is the rule.
    dead = [row[0] for row in await cursor.fetchall() if owner_dead(row[0])]
    cursor = await conn.execute(_CLAIM, (now, dead, limit))
    rows = await cursor.fetchall()
    ids = [row[0] for row in rows]
    if not ids:
        return []
    # With the rest of their holds' due notices: one node sends a hold's notices, in their
    # order (review/outbox.py), never two nodes a part each (unless another node holds the
    # rest's rows locked this moment: SKIP LOCKED leaves them to it).
    holds = sorted({row[1] for row in rows if row[1]})
    if holds:
        cursor = await conn.execute(_CLAIM_REST, (holds, ids, now, dead))
        ids += [row[0] for row in await cursor.fetchall()]
    cursor = await conn.execute(_TAKE, (now + NOTICE_LEASE, process_owner(), ids))
    # RETURNING keeps no order: sort as queued (created_at, then seq), and drop seq.
    claimed = sorted(await cursor.fetchall(), key=lambda row: (row[7], row[8]))
    journal = await taken(conn, ids)
    return [(*row[:8], journal.get(row[0], frozenset())) for row in claimed]


async def taken(conn: AsyncConnection[Any], notice_ids: Sequence[str]) -> dict[str, frozenset[str]]:
    """Per notice, the recipients the relay journal says the upstream took already."""
    keys = {notice_key(nid): nid for nid in notice_ids}
    cursor = await conn.execute(
        "SELECT key, recipient FROM relay_journal WHERE key = ANY(%s)", (list(keys),)
    )
    found: dict[str, set[str]] = {}
    for key, recipient in await cursor.fetchall():
        found.setdefault(keys[key], set()).add(recipient)
    return {nid: frozenset(recipients) for nid, recipients in found.items()}


def opened(sealer: Sealer, rows: Sequence[tuple[Any, ...]]) -> list[Notice]:
    return [
        Notice(
            nid, kind, hold_id, sender, tuple(json.loads(recipients)),
            sealer.open(f"notice:{nid}", bytes(message)), attempts, created_at, journal,
        )
        for nid, kind, hold_id, sender, recipients, message, attempts, created_at, journal in rows
    ]  # fmt: skip


async def sent(conn: AsyncConnection[Any], notice_ids: Sequence[str], now: float) -> None:
    await conn.execute(
        "UPDATE outbox SET sent_at = %s, attempts = attempts + 1 WHERE id = ANY(%s)",
        (now, list(notice_ids)),
    )


async def failed(
    conn: AsyncConnection[Any], notice_id: str, error: str, retry_at: float | None
) -> None:
    # No retry_at: the notice can never be sent (a permanent refusal); it stays in the
    # outbox, marked, for an operator to read.
    await conn.execute(
        "UPDATE outbox SET attempts = attempts + 1, last_error = %s, next_at = %s,"
        " claimed_by = '' WHERE id = %s",
        (
            text_value(error[:500]),
            retry_at if retry_at is not None else float("inf"),
            notice_id,
        ),
    )
