"""The embedded store: SQLite (WAL, synchronous=FULL) plus one encrypted file per hold.

Order of a hold: the encrypted blob is written atomically and fsync'd, then the metadata row
is committed with its audit entries and notices in one transaction. A crash between the two
leaves a blob without a row (harmless), never a row without its message. SQLite calls run on
one dedicated thread, off the event loop; ``BEGIN IMMEDIATE`` serialises writers, also across
processes, so the audit chain stays one chain.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from gateway import logs
from gateway.core import auditchain
from gateway.core.auditchain import Entry
from gateway.store import (
    AuditRecord,
    Consequences,
    Hold,
    NewHold,
    NewNotice,
    Notice,
    Status,
    schema,
)
from gateway.store.crypto import Sealer
from gateway.store.ownership import owner_dead, process_owner
from gateway.store.safeio import fsync_dir, write_atomic

T = TypeVar("T")

# How long a process may take to send the notices it claimed before another may send them.
NOTICE_LEASE = 300.0
# Journal entries outlive any MTA retry schedule (Postfix gives up after 5 days by default).
JOURNAL_DAYS = 7


class SqliteStore:
    def __init__(self, data_dir: Path, sealer: Sealer, clock: Callable[[], float] = time.time):
        self._dir = data_dir / "held"
        self._dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._sealer = sealer
        self._clock = clock
        self._log = logs.get("gateway.store")
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hold-store")
        self._db = sqlite3.connect(
            data_dir / "held.sqlite3", isolation_level=None, check_same_thread=False, timeout=10
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed hold survives a power cut, which is what our 250 promises.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(schema.SCHEMA)
        self._db.execute(
            "DELETE FROM relay_journal WHERE at < ?", (clock() - JOURNAL_DAYS * 86400,)
        )

    async def _run(self, work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, work)

    def _write(self, work: Callable[[], T]) -> T:
        """Run ``work`` in one write transaction."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            result = work()
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
        return result

    def blob_path(self, hold_id: str) -> Path:
        return self._dir / f"{hold_id}.msg"

    # --- holds -----------------------------------------------------------------------------

    async def hold(self, new: NewHold, then: Consequences | None = None) -> tuple[Hold, bool]:
        return await self._run(lambda: self._hold(new, then))

    def _hold(self, new: NewHold, then: Consequences | None) -> tuple[Hold, bool]:
        existing = self._get_by_key(new.key)
        if existing is not None:
            return existing, False
        hold_id = secrets.token_hex(8)
        write_atomic(self.blob_path(hold_id), self._sealer.seal(hold_id, new.message))
        row = (
            hold_id,
            new.key,
            Status.HELD.value,
            self._clock(),
            new.sender,
            json.dumps([schema.recipient_json(r) for r in new.recipients]),
            json.dumps(list(new.mail_options)),
            len(new.message),
            new.client,
            new.message_id,
            json.dumps(list(new.findings)),
            json.dumps(new.facts),
            new.subject,
        )

        def insert() -> Hold:
            self._db.execute(schema.INSERT_HOLD, row)
            hold = self._get(hold_id)
            assert hold is not None
            if then is not None:
                audit, notices = then(hold)
                self._append(list(audit))
                self._enqueue(list(notices))
            return hold

        try:
            return self._write(insert), True
        except sqlite3.IntegrityError:
            # Another process stored the same message between our look and our write.
            self.blob_path(hold_id).unlink(missing_ok=True)
            existing = self._get_by_key(new.key)
            if existing is None:
                raise
            return existing, False

    async def get(self, hold_id: str) -> Hold | None:
        return await self._run(lambda: self._get(hold_id))

    def _get(self, hold_id: str) -> Hold | None:
        row = self._db.execute("SELECT * FROM holds WHERE id = ?", (hold_id,)).fetchone()
        return schema.hold_from_row(row) if row else None

    def _get_by_key(self, key: str) -> Hold | None:
        row = self._db.execute("SELECT * FROM holds WHERE key = ?", (key,)).fetchone()
        return schema.hold_from_row(row) if row else None

    async def message(self, hold_id: str) -> bytes:
        def read() -> bytes:
            try:
                return self.blob_path(hold_id).read_bytes()
            except FileNotFoundError as exc:
                raise KeyError(hold_id) from exc

        return self._sealer.open(hold_id, await self._run(read))

    async def holds(self, status: Status | None = None) -> Sequence[Hold]:
        def query() -> list[Hold]:
            if status is None:
                rows = self._db.execute("SELECT * FROM holds ORDER BY created_at")
            else:
                rows = self._db.execute(
                    "SELECT * FROM holds WHERE status = ? ORDER BY created_at", (status.value,)
                )
            return [schema.hold_from_row(row) for row in rows]

        return await self._run(query)

    async def update(
        self,
        hold_id: str,
        expect: frozenset[Status],
        changes: Mapping[str, Any],
        audit: Sequence[AuditRecord] = (),
        notices: Sequence[NewNotice] = (),
    ) -> Hold | None:
        unknown = set(changes) - schema.UPDATABLE
        if unknown:
            raise ValueError(f"not updatable: {sorted(unknown)}")

        def change() -> bool:
            row = self._db.execute("SELECT status FROM holds WHERE id = ?", (hold_id,)).fetchone()
            if row is None or Status(row[0]) not in expect:
                return False
            columns = ", ".join(f"{name} = ?" for name in changes)
            values = [schema.column_value(name, value) for name, value in changes.items()]
            if columns:
                self._db.execute(f"UPDATE holds SET {columns} WHERE id = ?", (*values, hold_id))  # noqa: S608
            self._append(list(audit))
            self._enqueue(list(notices))
            return True

        def run() -> Hold | None:
            return self._get(hold_id) if self._write(change) else None

        return await self._run(run)

    async def claim(
        self, hold_id: str, owner: str, now: float, stale_before: float, dead_owner: str = ""
    ) -> Hold | None:
        def take() -> bool:
            cursor = self._db.execute(
                "UPDATE holds SET attempt_at = ?, attempt_by = ? WHERE id = ?"
                " AND status = 'releasing' AND (attempt_at IS NULL OR attempt_at < ?"
                " OR attempt_by = ? OR (? != '' AND attempt_by = ?))",
                (now, owner, hold_id, stale_before, owner, dead_owner, dead_owner),
            )
            return cursor.rowcount == 1

        def run() -> Hold | None:
            return self._get(hold_id) if self._write(take) else None

        return await self._run(run)

    async def purge_body(self, hold_id: str, audit: Sequence[AuditRecord] = ()) -> bool:
        def purge() -> bool:
            path = self.blob_path(hold_id)
            existed = path.exists()
            path.unlink(missing_ok=True)
            fsync_dir(path.parent)

            def mark() -> None:
                self._db.execute(
                    "UPDATE holds SET purged_at = ? WHERE id = ? AND purged_at IS NULL",
                    (self._clock(), hold_id),
                )
                self._append(list(audit))

            self._write(mark)
            return existed

        return await self._run(purge)

    # --- relay journal ---------------------------------------------------------------------

    async def relayed(self, key: str) -> frozenset[str]:
        def query() -> frozenset[str]:
            rows = self._db.execute("SELECT recipient FROM relay_journal WHERE key = ?", (key,))
            return frozenset(row[0] for row in rows)

        return await self._run(query)

    async def record_relayed(
        self, key: str, recipients: Sequence[str], audit: Sequence[AuditRecord] = ()
    ) -> None:
        def insert() -> None:
            now = self._clock()
            self._db.executemany(
                "INSERT OR IGNORE INTO relay_journal VALUES (?, ?, ?)",
                [(key, recipient, now) for recipient in recipients],
            )
            self._append(list(audit))

        await self._run(lambda: self._write(insert))

    # --- audit trail -----------------------------------------------------------------------

    async def append_audit(self, audit: Sequence[AuditRecord]) -> None:
        await self._run(lambda: self._write(lambda: self._append(list(audit))))

    def _append(self, records: list[AuditRecord]) -> None:
        if not records:
            return
        last = self._db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev = (last[0], last[1]) if last else (0, auditchain.GENESIS)
        for record in records:
            seq += 1
            data = dict(record.data)
            entry = auditchain.seal(
                seq, self._clock(), record.event, record.hold_id, record.actor, data, prev
            )
            self._db.execute(
                "INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    entry.seq,
                    entry.at,
                    entry.event,
                    entry.hold_id,
                    entry.actor,
                    json.dumps(data, sort_keys=True),
                    entry.prev,
                    entry.hash,
                ),
            )
            prev = entry.hash
            # The log is the witness for the chain's head: a copy kept elsewhere shows if
            # the newest entries were ever cut off.
            self._log.info(
                "audit appended",
                seq=entry.seq,
                audit_event=entry.event,
                hold_id=entry.hold_id,
                head=entry.hash,
            )

    async def audit_entries(self, since: float | None = None) -> Sequence[Entry]:
        def query() -> list[Entry]:
            rows = self._db.execute(
                "SELECT seq, at, event, hold_id, actor, data, prev, hash FROM audit"
                " WHERE at >= ? ORDER BY seq",
                (since if since is not None else float("-inf"),),
            )
            return [
                Entry(seq, at, event, hold_id, actor, json.loads(data), prev, digest)
                for seq, at, event, hold_id, actor, data, prev, digest in rows
            ]

        return await self._run(query)

    async def audit_head(self) -> tuple[int, str] | None:
        def query() -> tuple[int, str] | None:
            row = self._db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
            found = row.fetchone()
            return (int(found[0]), str(found[1])) if found else None

        return await self._run(query)

    # --- outbox ----------------------------------------------------------------------------

    def _enqueue(self, notices: list[NewNotice]) -> None:
        for notice in notices:
            notice_id = secrets.token_hex(8)
            self._db.execute(
                "INSERT INTO outbox (id, kind, hold_id, sender, recipients, message, created_at,"
                " next_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    notice_id,
                    notice.kind,
                    notice.hold_id,
                    notice.sender,
                    json.dumps(list(notice.recipients)),
                    self._sealer.seal(f"notice:{notice_id}", notice.message),
                    self._clock(),
                    self._clock(),
                ),
            )

    async def due_notices(self, now: float, limit: int = 50) -> Sequence[Notice]:
        """Notices due for sending, claimed for NOTICE_LEASE seconds: another process (the
        CLI beside gateway serve) does not pick the same notice meanwhile."""

        def claim() -> list[tuple[Any, ...]]:
            rows = self._db.execute(
                "SELECT id, kind, hold_id, sender, recipients, message, attempts, created_at,"
                " next_at, claimed_by FROM outbox WHERE sent_at IS NULL"
                " AND (next_at <= ? OR claimed_by != '') ORDER BY created_at",
                (now,),
            ).fetchall()
            # Due, or claimed by a process that died before it could send (a crash).
            due = [r for r in rows if r[8] <= now or owner_dead(r[9])][:limit]
            self._db.executemany(
                "UPDATE outbox SET next_at = ?, claimed_by = ? WHERE id = ?",
                [(now + NOTICE_LEASE, process_owner(), row[0]) for row in due],
            )
            return [row[:8] for row in due]

        def query() -> list[Notice]:
            return [
                Notice(
                    nid, kind, hold_id, sender, tuple(json.loads(recipients)),
                    self._sealer.open(f"notice:{nid}", message), attempts, created_at,
                )
                for nid, kind, hold_id, sender, recipients, message, attempts, created_at
                in self._write(claim)
            ]  # fmt: skip

        return await self._run(query)

    async def notice_sent(self, notice_id: str, audit: Sequence[AuditRecord] = ()) -> None:
        def mark() -> None:
            self._db.execute(
                "UPDATE outbox SET sent_at = ?, attempts = attempts + 1 WHERE id = ?",
                (self._clock(), notice_id),
            )
            self._append(list(audit))

        await self._run(lambda: self._write(mark))

    async def notice_failed(self, notice_id: str, error: str, retry_at: float | None) -> None:
        def mark() -> None:
            # No retry_at: the notice can never be sent (a permanent refusal); it stays
            # in the outbox, marked, for an operator to read.
            self._db.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_at = ?,"
                " claimed_by = '' WHERE id = ?",
                (error[:500], retry_at if retry_at is not None else float("inf"), notice_id),
            )

        await self._run(lambda: self._write(mark))

    async def close(self) -> None:
        await self._run(self._db.close)
        self._executor.shutdown(wait=True)
