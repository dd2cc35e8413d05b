"""The embedded hold store: SQLite (WAL, synchronous=FULL) plus one encrypted file per hold.

Order of a hold: the encrypted blob is written atomically and fsync'd, then the metadata row
is committed. A crash between the two leaves a blob without a row (harmless; swept), never a
row without its message. SQLite calls run on one dedicated thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from gateway.safeio import write_atomic
from gateway.store import HeldRecipient, Hold, NewHold
from gateway.store.crypto import Sealer

T = TypeVar("T")

_SCHEMA = """
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
    facts        TEXT NOT NULL    -- JSON object
);
CREATE INDEX IF NOT EXISTS holds_status ON holds (status, created_at);
CREATE TABLE IF NOT EXISTS relay_journal (
    key          TEXT NOT NULL,
    recipient    TEXT NOT NULL,
    at           REAL NOT NULL,
    PRIMARY KEY (key, recipient)
);
"""
_INSERT_HOLD = "INSERT INTO holds VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
# Journal entries outlive any MTA retry schedule (Postfix gives up after 5 days by default).
JOURNAL_DAYS = 7


class SqliteStore:
    def __init__(self, data_dir: Path, sealer: Sealer) -> None:
        self._dir = data_dir / "held"
        self._dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._sealer = sealer
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hold-store")
        self._db = sqlite3.connect(
            data_dir / "held.sqlite3", isolation_level=None, check_same_thread=False, timeout=10
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed hold survives a power cut, which is what our 250 promises.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._db.execute(
            "DELETE FROM relay_journal WHERE at < ?", (time.time() - JOURNAL_DAYS * 86400,)
        )

    async def _run(self, work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, work)

    def blob_path(self, hold_id: str) -> Path:
        return self._dir / f"{hold_id}.msg"

    async def hold(self, new: NewHold) -> tuple[Hold, bool]:
        return await self._run(lambda: self._hold(new))

    def _hold(self, new: NewHold) -> tuple[Hold, bool]:
        existing = self._get_by_key(new.key)
        if existing is not None:
            return existing, False
        hold_id = secrets.token_hex(8)
        write_atomic(self.blob_path(hold_id), self._sealer.seal(hold_id, new.message))
        now = time.time()
        row = (
            hold_id,
            new.key,
            "held",
            now,
            new.sender,
            json.dumps([_recipient_json(r) for r in new.recipients]),
            json.dumps(list(new.mail_options)),
            len(new.message),
            new.client,
            new.message_id,
            json.dumps(list(new.findings)),
            json.dumps(new.facts),
        )
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(_INSERT_HOLD, row)
        hold = self._get(hold_id)
        assert hold is not None
        return hold, True

    async def get(self, hold_id: str) -> Hold | None:
        return await self._run(lambda: self._get(hold_id))

    def _get(self, hold_id: str) -> Hold | None:
        row = self._db.execute("SELECT * FROM holds WHERE id = ?", (hold_id,)).fetchone()
        return _hold_from_row(row) if row else None

    def _get_by_key(self, key: str) -> Hold | None:
        row = self._db.execute("SELECT * FROM holds WHERE key = ?", (key,)).fetchone()
        return _hold_from_row(row) if row else None

    async def message(self, hold_id: str) -> bytes:
        blob = await self._run(self.blob_path(hold_id).read_bytes)
        return self._sealer.open(hold_id, blob)

    async def holds(self, status: str | None = None) -> Sequence[Hold]:
        def query() -> list[Hold]:
            sql = "SELECT * FROM holds"
            args: tuple[str, ...] = ()
            if status is not None:
                sql, args = sql + " WHERE status = ?", (status,)
            rows = self._db.execute(sql + " ORDER BY created_at", args).fetchall()
            return [_hold_from_row(row) for row in rows]

        return await self._run(query)

    async def relayed(self, key: str) -> frozenset[str]:
        def query() -> frozenset[str]:
            rows = self._db.execute("SELECT recipient FROM relay_journal WHERE key = ?", (key,))
            return frozenset(row[0] for row in rows)

        return await self._run(query)

    async def record_relayed(self, key: str, recipients: Sequence[str]) -> None:
        def insert() -> None:
            now = time.time()
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany(
                    "INSERT OR IGNORE INTO relay_journal VALUES (?, ?, ?)",
                    [(key, recipient, now) for recipient in recipients],
                )

        await self._run(insert)

    async def close(self) -> None:
        await self._run(self._db.close)
        self._executor.shutdown(wait=True)


def _recipient_json(recipient: HeldRecipient) -> dict[str, Any]:
    return {
        "address": recipient.address,
        "domain": recipient.domain,
        "reasons": list(recipient.reasons),
        "options": list(recipient.options),
    }


def _hold_from_row(row: tuple[Any, ...]) -> Hold:
    (hold_id, key, status, created_at, sender, recipients, mail_options, size, client) = row[:9]
    message_id, findings, facts = row[9:]
    return Hold(
        id=hold_id,
        key=key,
        status=status,
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
    )
