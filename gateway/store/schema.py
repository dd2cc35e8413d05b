"""The embedded store's tables, and how a hold is written to and read from a row."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from gateway.store import HeldRecipient, Hold, Status

SCHEMA = """
CREATE TABLE IF NOT EXISTS holds (
    id           TEXT PRIMARY KEY,
    key          TEXT NOT NULL UNIQUE,
    status       TEXT NOT NULL,
    created_at   REAL NOT NULL,
    sender       TEXT NOT NULL,
    recipients   TEXT NOT NULL,   -- JSON list of {address, domain, reasons, options}
    mail_options TEXT NOT NULL,   -- JSON list
    size         INTEGER NOT NULL,
    client       TEXT NOT NULL,
    message_id   TEXT NOT NULL,
    findings     TEXT NOT NULL,   -- JSON list
    facts        TEXT NOT NULL,   -- JSON object
    subject      TEXT NOT NULL DEFAULT '',
    decided_at   REAL,
    decided_by   TEXT NOT NULL DEFAULT '',
    decision     TEXT NOT NULL DEFAULT '',
    escalated_at REAL,
    purged_at    REAL,
    delivered    TEXT NOT NULL DEFAULT '[]',
    refused      TEXT NOT NULL DEFAULT '{}',
    last_error   TEXT NOT NULL DEFAULT '',
    attempt_at   REAL,
    attempt_by   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS holds_status ON holds (status, created_at);
CREATE TABLE IF NOT EXISTS relay_journal (
    key          TEXT NOT NULL,
    recipient    TEXT NOT NULL,
    at           REAL NOT NULL,
    PRIMARY KEY (key, recipient)
);
CREATE TABLE IF NOT EXISTS audit (
    seq          INTEGER PRIMARY KEY,
    at           REAL NOT NULL,
    event        TEXT NOT NULL,
    hold_id      TEXT NOT NULL,
    actor        TEXT NOT NULL,
    data         TEXT NOT NULL,   -- JSON object
    prev         TEXT NOT NULL,
    hash         TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_hold ON audit (hold_id);
CREATE TABLE IF NOT EXISTS outbox (
    id           TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,
    hold_id      TEXT NOT NULL,
    sender       TEXT NOT NULL,
    recipients   TEXT NOT NULL,   -- JSON list
    message      BLOB NOT NULL,   -- encrypted: a notice may name people
    created_at   REAL NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_at      REAL NOT NULL,
    sent_at      REAL,
    last_error   TEXT NOT NULL DEFAULT '',
    claimed_by   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (sent_at, next_at);
"""
INSERT_HOLD = (
    "INSERT INTO holds (id, key, status, created_at, sender, recipients, mail_options, size,"
    " client, message_id, findings, facts, subject) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"
)
_JSON_COLUMNS = {"delivered", "refused"}
UPDATABLE = {
    "status", "decided_at", "decided_by", "decision", "escalated_at", "delivered", "refused",
    "last_error", "attempt_at", "attempt_by",
}  # fmt: skip


def column_value(name: str, value: Any) -> Any:
    if name in _JSON_COLUMNS:
        return json.dumps(list(value) if isinstance(value, tuple) else value)
    if isinstance(value, Status):
        return value.value
    return value


def recipient_json(recipient: HeldRecipient) -> dict[str, Any]:
    return {
        "address": recipient.address,
        "domain": recipient.domain,
        "reasons": list(recipient.reasons),
        "options": list(recipient.options),
    }


def hold_from_row(row: sqlite3.Row | tuple[Any, ...]) -> Hold:
    (hold_id, key, status, created_at, sender, recipients, mail_options, size, client,
     message_id, findings, facts, subject, decided_at, decided_by, decision, escalated_at,
     purged_at, delivered, refused, last_error, attempt_at, attempt_by) = row  # fmt: skip
    return Hold(
        id=hold_id,
        key=key,
        status=Status(status),
        created_at=created_at,
        sender=sender,
        recipients=tuple(
            HeldRecipient(r["address"], r["domain"], tuple(r["reasons"]), tuple(r["options"]))
            for r in json.loads(recipients)
        ),
        mail_options=tuple(json.loads(mail_options)),
        size=size,
        client=client,
        message_id=message_id,
        findings=tuple(json.loads(findings)),
        facts=json.loads(facts),
        subject=subject,
        decided_at=decided_at,
        decided_by=decided_by,
        decision=decision,
        escalated_at=escalated_at,
        purged_at=purged_at,
        delivered=tuple(json.loads(delivered)),
        refused=json.loads(refused),
        last_error=last_error,
        attempt_at=attempt_at,
        attempt_by=attempt_by,
    )
