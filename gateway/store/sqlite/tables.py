"""The hold store's tables, their migrations, and how a hold is written to and read from a row.

Version 1 is the schema of releases before versioning (every statement ``IF NOT EXISTS``, so
a data directory from then is taken up as it is); each later change is a new step at the end
of ``migrations``, never an edit of an old one.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.store import schema
from gateway.store.records import NewHold, Status
from gateway.store.sqlite import links, trail
from gateway.store.sqlite.database import Migration, script

VERSION_1 = """
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
# Pages of one hold's trail, newest first, without reading the rest of the trail.
VERSION_2 = "CREATE INDEX IF NOT EXISTS audit_hold_seq ON audit (hold_id, seq)"
# The last active probe of each domain (``gateway.store.probes``); no mail in it.
PROBE_RESULTS = """
CREATE TABLE IF NOT EXISTS probe_results (
    domain       TEXT PRIMARY KEY,
    at           REAL NOT NULL,
    secure       INTEGER NOT NULL,
    summary      TEXT NOT NULL,
    hosts        TEXT NOT NULL    -- JSON list of per-host facts
)
"""

# The delivery queue ([delivery] direct): one row per message, its recipients' states as JSON;
# its body was an encrypted file beside the holds' until ``BODIES`` (sqlite.queue).
QUEUE = """
CREATE TABLE IF NOT EXISTS queue (
    id           TEXT PRIMARY KEY,
    key          TEXT NOT NULL UNIQUE,
    created_at   REAL NOT NULL,
    entry        TEXT NOT NULL,   -- JSON: sender, recipients and their states, options, ...
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_at      REAL NOT NULL,
    last_error   TEXT NOT NULL DEFAULT '',
    lease_until  REAL,
    lease_by     TEXT NOT NULL DEFAULT '',
    done_at      REAL
);
CREATE INDEX IF NOT EXISTS queue_due ON queue (done_at, next_at)
"""

# The sealed bodies of holds and queue entries, in tables of their own (listing holds never
# reads a body), written in the transaction of their row: one COMMIT, one fsync of the log,
# covers a batch of holds with their bodies, where a file per body cost its own fsync. The
# files of earlier releases are taken into these tables at open (``sqlite.bodyfiles``).
BODIES = """
CREATE TABLE IF NOT EXISTS hold_bodies (
    hold_id      TEXT PRIMARY KEY,
    body         BLOB NOT NULL    -- sealed (store.crypto), associated data the hold's id
);
CREATE TABLE IF NOT EXISTS queue_bodies (
    queue_id     TEXT PRIMARY KEY,
    body         BLOB NOT NULL    -- sealed, associated data "queue:<id>"
)
"""


def migrations(audit_key: bytes, clock: Callable[[], float]) -> tuple[Migration, ...]:
    """Every step, in order. Version 3 keys the audit chain (``trail.keying_migration``), so
    the steps need the audit key; a later step goes at the end, after it."""
    return (
        script(VERSION_1),
        script(VERSION_2),
        trail.keying_migration(audit_key, clock),
        script(PROBE_RESULTS),
        script(QUEUE),
        script(links.TABLES),
        script(BODIES),
    )


COLUMNS = (
    "id, key, status, created_at, sender, recipients, mail_options, size, client, message_id,"
    " findings, facts, subject, decided_at, decided_by, decision, escalated_at, purged_at,"
    " delivered, refused, last_error, attempt_at, attempt_by"
)
INSERT_HOLD = (
    "INSERT INTO holds (id, key, status, created_at, sender, recipients, mail_options, size,"
    " client, message_id, findings, facts, subject) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"
)


@dataclass(frozen=True)
class BodyTable:
    """A table of sealed bodies, and its two inserts: the body bound as a parameter, or a
    zeroblob of its length to be written in place (``insert_body``)."""

    name: str
    insert: str
    insert_zeroed: str


HOLD_BODIES = BodyTable(
    "hold_bodies",
    "INSERT INTO hold_bodies (hold_id, body) VALUES (?, ?)",
    "INSERT INTO hold_bodies (hold_id, body) VALUES (?, zeroblob(?))",
)
QUEUE_BODIES = BodyTable(
    "queue_bodies",
    "INSERT INTO queue_bodies (queue_id, body) VALUES (?, ?)",
    "INSERT INTO queue_bodies (queue_id, body) VALUES (?, zeroblob(?))",
)
# A body from this size on is written through SQLite's incremental blob I/O (``insert_body``).
LARGE_BODY = 1024 * 1024
_BLOB_CHUNK = 256 * 1024


def insert_body(db: sqlite3.Connection, table: BodyTable, row_id: str, body: bytes) -> None:
    """Insert a sealed body into ``table``.

    A body bound as a parameter is built into its record in a buffer of its own size, which
    the prepared statement keeps for reuse, and Python's sqlite3 keeps the statement in its
    cache: a 20 MB hold would leave 20 MB behind in every process that wrote one (measured).
    A large body is inserted as a zeroblob, which SQLite does not materialise, and then
    written in place through an incremental blob handle
    (https://www.sqlite.org/c3ref/blob_open.html), in the same transaction: no buffer of its
    size is kept.
    """
    if len(body) < LARGE_BODY:
        db.execute(table.insert, (row_id, body))
        return
    rowid = db.execute(table.insert_zeroed, (row_id, len(body))).lastrowid
    assert rowid is not None
    view = memoryview(body)
    with db.blobopen(table.name, "body", rowid) as blob:
        for start in range(0, len(body), _BLOB_CHUNK):
            blob.write(view[start : start + _BLOB_CHUNK])


def hold_row(hold_id: str, created_at: float, new: NewHold) -> tuple[Any, ...]:
    return (
        hold_id,
        new.key,
        Status.HELD.value,
        created_at,
        new.sender,
        json.dumps([schema.recipient_json(r) for r in new.recipients]),
        json.dumps(list(new.mail_options)),
        len(new.message),
        new.client,
        new.message_id,
        json.dumps(list(new.findings)),
        json.dumps(schema.facts_json(new.facts)),
        new.subject,
    )


# The same for every backend (``store.schema``).
change_columns = schema.change_columns
hold_from_row = schema.hold_from_row
fresh_hold = schema.fresh_hold
