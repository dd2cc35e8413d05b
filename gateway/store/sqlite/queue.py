"""The delivery queue's table, for SqliteStore: functions of a connection, run on the store's
thread inside its transactions. The entry's fixed part and its recipients' states are one JSON
column (written whole by the one process holding the lease); what the scheduler selects on
(due time, lease, finished) are columns of their own.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from gateway.store import schema
from gateway.store.ownership import owner_dead
from gateway.store.queued import NewQueued, Queued, QueuedRecipient, RecipientState

COLUMNS = (
    "id, key, created_at, entry, attempts, next_at, last_error, lease_until, lease_by, done_at"
)


def insert(db: sqlite3.Connection, queue_id: str, now: float, new: NewQueued) -> None:
    db.execute(
        "INSERT INTO queue (id, key, created_at, entry, next_at) VALUES (?, ?, ?, ?, ?)",
        (queue_id, new.key, now, json.dumps(entry_json(new)), now),
    )


def entry_json(new: NewQueued) -> dict[str, Any]:
    """The entry's fixed part, as both backends keep it (one JSON text column)."""
    return {
        "sender": new.sender,
        "recipients": [_recipient_json(r) for r in new.recipients],
        "mail_options": list(new.mail_options),
        "size": len(new.message),
        "client": new.client,
        "helo": new.helo,
        "protocol": new.protocol,
        "message_id": new.message_id,
        "findings": list(new.findings),
        "facts": schema.facts_json(new.facts),
        "subject": new.subject,
        "summary": new.summary,
        "smtputf8": new.smtputf8,
        "flagged": new.flagged,
        "requiretls": new.requiretls,
        "sent_from": new.sent_from,
        "client_name": new.client_name,
        "trace_comment": new.trace_comment,
    }


def get(db: sqlite3.Connection, queue_id: str) -> Queued | None:
    sql = f"SELECT {COLUMNS} FROM queue WHERE id = ?"  # noqa: S608
    row = db.execute(sql, (queue_id,)).fetchone()
    return from_row(row) if row else None


def by_key(db: sqlite3.Connection, key: str) -> Queued | None:
    sql = f"SELECT {COLUMNS} FROM queue WHERE key = ?"  # noqa: S608
    row = db.execute(sql, (key,)).fetchone()
    return from_row(row) if row else None


def entries(db: sqlite3.Connection, finished: bool, limit: int) -> list[Queued]:
    where = "" if finished else "WHERE done_at IS NULL"
    sql = f"SELECT {COLUMNS} FROM queue {where} ORDER BY created_at LIMIT ?"  # noqa: S608
    return [from_row(row) for row in db.execute(sql, (limit,))]


def claim(
    db: sqlite3.Connection, now: float, lease_until: float, owner: str, limit: int
) -> list[Queued]:
    """Due entries whose lease ran out, or whose claimer is gone (a crash, kill -9)."""
    sql = (
        f"SELECT {COLUMNS} FROM queue WHERE done_at IS NULL AND next_at <= ?"  # noqa: S608
        " ORDER BY next_at"
    )
    due: list[Queued] = []
    for row in db.execute(sql, (now,)):
        # Leased rows are passed over before they are parsed, and the scan stops at
        # ``limit``: a long queue costs a claim only the rows it takes.
        if row[7] is None or row[7] < now or owner_dead(row[8]):
            due.append(from_row(row))
            if len(due) >= limit:
                break
    db.executemany(
        "UPDATE queue SET lease_until = ?, lease_by = ? WHERE id = ?",
        [(lease_until, owner, entry.id) for entry in due],
    )
    return [get(db, entry.id) or entry for entry in due]


def progress(
    db: sqlite3.Connection,
    queue_id: str,
    owner: str,
    recipients: Sequence[QueuedRecipient],
    next_at: float,
    last_error: str,
    now: float,
) -> bool:
    """Write one attempt's outcome if ``owner`` still holds the lease; True if it did."""
    row = db.execute("SELECT entry, lease_by FROM queue WHERE id = ?", (queue_id,)).fetchone()
    if row is None or row[1] != owner:
        return False
    entry = json.loads(row[0])
    entry["recipients"] = [_recipient_json(r) for r in recipients]
    done = now if all(r.state is not RecipientState.PENDING for r in recipients) else None
    db.execute(
        "UPDATE queue SET entry = ?, attempts = attempts + 1, next_at = ?, last_error = ?,"
        " lease_until = NULL, lease_by = '', done_at = ? WHERE id = ?",
        (json.dumps(entry), next_at, last_error[:500], done, queue_id),
    )
    return True


def retry(db: sqlite3.Connection, queue_id: str, now: float) -> bool:
    cursor = db.execute(
        "UPDATE queue SET next_at = ? WHERE id = ? AND done_at IS NULL", (now, queue_id)
    )
    return cursor.rowcount == 1


def purge(db: sqlite3.Connection, queue_id: str, now: float) -> bool:
    row = db.execute(
        "SELECT entry FROM queue WHERE id = ? AND done_at IS NULL", (queue_id,)
    ).fetchone()
    if row is None:
        return False
    entry = json.loads(row[0])
    for recipient in entry["recipients"]:
        if recipient["state"] == RecipientState.PENDING.value:
            recipient["state"] = RecipientState.PURGED.value
            recipient["done_at"] = now
    db.execute(
        "UPDATE queue SET entry = ?, done_at = ?, lease_until = NULL, lease_by = '' WHERE id = ?",
        (json.dumps(entry), now, queue_id),
    )
    return True


def prune(db: sqlite3.Connection, before: float) -> int:
    """Finished entries older than ``before`` and their journal rows (``queue:<id>:<domain>``,
    deliver.Delivery's keys); their bodies went when they finished."""
    rows = db.execute("SELECT id FROM queue WHERE done_at IS NOT NULL AND done_at < ?", (before,))
    ids = [row[0] for row in rows]
    for queue_id in ids:
        db.execute("DELETE FROM relay_journal WHERE key LIKE ?", (f"queue:{queue_id}:%",))
        db.execute("DELETE FROM queue WHERE id = ?", (queue_id,))
    return len(ids)


def depth(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT count(*) FROM queue WHERE done_at IS NULL").fetchone()[0])


def next_due(db: sqlite3.Connection) -> float | None:
    row = db.execute("SELECT min(next_at) FROM queue WHERE done_at IS NULL").fetchone()
    return float(row[0]) if row and row[0] is not None else None


def from_row(row: sqlite3.Row | tuple[Any, ...]) -> Queued:
    (queue_id, key, created_at, entry, attempts, next_at, last_error, lease_until, lease_by,
     done_at) = row  # fmt: skip
    e = json.loads(entry)
    return Queued(
        id=queue_id,
        key=key,
        created_at=created_at,
        sender=e["sender"],
        recipients=tuple(_recipient_from_json(r) for r in e["recipients"]),
        mail_options=tuple(e["mail_options"]),
        size=e["size"],
        client=e["client"],
        helo=e["helo"],
        protocol=e["protocol"],
        message_id=e["message_id"],
        findings=tuple(e["findings"]),
        facts=schema.facts_from_json(e["facts"]),
        subject=e["subject"],
        summary=e["summary"],
        smtputf8=bool(e["smtputf8"]),
        flagged=bool(e["flagged"]),
        requiretls=bool(e["requiretls"]),
        # Entries queued by earlier releases have none of these: the client's address stands.
        sent_from=e.get("sent_from", ""),
        client_name=e.get("client_name", ""),
        trace_comment=e.get("trace_comment", ""),
        attempts=attempts,
        next_at=next_at,
        last_error=last_error,
        lease_until=lease_until,
        lease_by=lease_by,
        done_at=done_at,
    )


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


def _recipient_from_json(data: dict[str, Any]) -> QueuedRecipient:
    return QueuedRecipient(
        address=data["address"],
        domain=data["domain"],
        options=tuple(data.get("options") or ()),
        state=RecipientState(data["state"]),
        reply=data.get("reply", ""),
        stage=data.get("stage", ""),
        hosts=tuple(data.get("hosts") or ()),
        done_at=data.get("done_at"),
        proof=data.get("proof") or {},
    )
