"""The outbox's table: notices queued with what caused them, claimed, sent or failed, for
SqliteStore. Functions of a connection, run on the store's thread inside its transactions.

A notice is sent once by its "sent" mark, committed with its audit entry as soon as the
upstream has taken it: the mark is its journal. (A relay journal write before the mark only
stood where the mark stands, one more commit per notice.) The journal's rows an earlier
version wrote for a notice are still read, with the claim, in its transaction.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Sequence
from typing import Any

from gateway.store.crypto import Sealer
from gateway.store.ownership import owner_dead, process_owner
from gateway.store.records import NewNotice, Notice, notice_key

# How long a process may take to send the notices it claimed before another may send them.
NOTICE_LEASE = 300.0


def enqueue(
    db: sqlite3.Connection, sealer: Sealer, now: float, notices: Sequence[NewNotice]
) -> None:
    insert(db, sealed(sealer, now, notices))


def sealed(sealer: Sealer, now: float, notices: Sequence[NewNotice]) -> list[tuple[Any, ...]]:
    """The notices' rows, each message sealed under its own id (a notice may name people):
    made before the write transaction, which then only inserts them (``insert``)."""
    rows = []
    for notice in notices:
        notice_id = secrets.token_hex(8)
        rows.append(
            (
                notice_id,
                notice.kind,
                notice.hold_id,
                notice.sender,
                json.dumps(list(notice.recipients)),
                sealer.seal(f"notice:{notice_id}", notice.message),
                now,
                now,
            )
        )
    return rows


def insert(db: sqlite3.Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    db.executemany(
        "INSERT INTO outbox (id, kind, hold_id, sender, recipients, message, created_at,"
        " next_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )


def claim_due(db: sqlite3.Connection, now: float, limit: int) -> list[tuple[Any, ...]]:
    """Notices due for sending, claimed for NOTICE_LEASE seconds: another process (the CLI
    beside gateway serve) does not pick the same notice meanwhile. Oldest first, one event's
    notices in the order they were queued (they share one ``created_at``)."""
    rows = db.execute(
        "SELECT id, kind, hold_id, sender, recipients, message, attempts, created_at,"
        " next_at, claimed_by FROM outbox WHERE sent_at IS NULL"
        " AND (next_at <= ? OR claimed_by != '') ORDER BY created_at, rowid",
        (now,),
    ).fetchall()
    # Due, or claimed by a process that died before it could send (a crash).
    eligible = [r for r in rows if r[8] <= now or owner_dead(r[9])]
    due = eligible[:limit]
    # With the rest of their holds' due notices, past the limit: one process sends a hold's
    # notices, in their order (review/outbox.py), never two processes a part each.
    holds = {r[2] for r in due if r[2]}
    due += [r for r in eligible[limit:] if r[2] in holds]
    db.executemany(
        "UPDATE outbox SET next_at = ?, claimed_by = ? WHERE id = ?",
        [(now + NOTICE_LEASE, process_owner(), row[0]) for row in due],
    )
    journal = taken(db, [row[0] for row in due])
    return [(*row[:8], journal.get(row[0], frozenset())) for row in due]


def taken(db: sqlite3.Connection, notice_ids: Sequence[str]) -> dict[str, frozenset[str]]:
    """Per notice, the recipients the relay journal says the upstream took already."""
    keys = {notice_key(nid): nid for nid in notice_ids}
    found: dict[str, set[str]] = {}
    rows = db.execute(
        "SELECT key, recipient FROM relay_journal WHERE key IN (SELECT value FROM json_each(?))",
        (json.dumps(list(keys)),),
    )
    for key, recipient in rows:
        found.setdefault(keys[key], set()).add(recipient)
    return {nid: frozenset(recipients) for nid, recipients in found.items()}


def opened(sealer: Sealer, rows: Sequence[tuple[Any, ...]]) -> list[Notice]:
    return [
        Notice(
            nid, kind, hold_id, sender, tuple(json.loads(recipients)),
            sealer.open(f"notice:{nid}", message), attempts, created_at, journal,
        )
        for nid, kind, hold_id, sender, recipients, message, attempts, created_at, journal in rows
    ]  # fmt: skip


def sent(db: sqlite3.Connection, notice_ids: Sequence[str], now: float) -> None:
    db.executemany(
        "UPDATE outbox SET sent_at = ?, attempts = attempts + 1 WHERE id = ?",
        [(now, notice_id) for notice_id in notice_ids],
    )


def failed(db: sqlite3.Connection, notice_id: str, error: str, retry_at: float | None) -> None:
    # No retry_at: the notice can never be sent (a permanent refusal); it stays in the
    # outbox, marked, for an operator to read.
    db.execute(
        "UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_at = ?,"
        " claimed_by = '' WHERE id = ?",
        (error[:500], retry_at if retry_at is not None else float("inf"), notice_id),
    )
