"""The embedded hold store: one SQLite file (WAL, synchronous=FULL), bodies included.

A hold's body is sealed (AES-256-GCM, ``store.crypto``; the key is outside the database) and
inserted into ``hold_bodies`` in the transaction of its row, its audit entries and its
notices: one COMMIT makes all of it durable, or none of it. A queue entry's body goes the same
way into ``queue_bodies``. SQLite calls run on the file's dedicated thread (``Database``), off
the event loop; ``BEGIN IMMEDIATE`` serialises writers, also across processes, so the audit
chain stays one chain. Holds, relay journal records and queue entries go through
``groupcommit``: the ones waiting together share one transaction and one COMMIT (one fsync
of the log for a batch of holds with their bodies), and nothing but SQL runs while the
writer's lock is held. Body files of earlier releases are taken in at open (``bodyfiles``).
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from gateway import logs
from gateway.core.auditchain import Entry, Problem
from gateway.store.auditkey import default_key
from gateway.store.changes import HoldChange, SendLinks
from gateway.store.crypto import Sealer
from gateway.store.headlog import witness_appended
from gateway.store.probes import ProbeRecord
from gateway.store.queries import AuditQuery, HoldQuery
from gateway.store.records import (
    AuditRecord,
    Consequences,
    Hold,
    NewHold,
    NewNotice,
    Notice,
    Status,
)
from gateway.store.sqlite import (
    bodyfiles,
    deliveryqueue,
    links,
    outbox,
    probes,
    queries,
    rotation,
    tables,
    trail,
)
from gateway.store.sqlite.database import Database
from gateway.store.sqlite.groupcommit import GroupCommit

T = TypeVar("T")
HELD_DB = "held.sqlite3"
# Journal entries outlive any MTA retry schedule (Postfix gives up after 5 days by default).
JOURNAL_DAYS = 7


class SqliteStore(deliveryqueue.SqliteQueue, links.SqliteLinks):
    """Implements ``Holds``, ``RelayJournal``, ``AuditTrail``, ``NoticeOutbox``,
    ``ProbeResults``, and through ``sqlite.deliveryqueue`` ``DeliveryQueue`` and
    ``sqlite.links`` ``SecureLinks``."""

    def __init__(
        self,
        data_dir: Path,
        sealer: Sealer,
        clock: Callable[[], float] = time.time,
        audit_key: bytes | None = None,
    ):
        """``audit_key`` seals the audit chain; by default <data_dir>/audit.key (made at first
        start)."""
        self._sealer = sealer
        self._clock = clock
        self._audit_key = audit_key if audit_key is not None else default_key(data_dir)
        self._log = logs.get("gateway.store")
        migrations = tables.migrations(self._audit_key, clock)
        self._file = Database(data_dir / HELD_DB, migrations, name="hold-store")
        self._db = self._file.db
        self._commits = GroupCommit(self._file)
        self._db.create_function("data_text", 1, trail.data_text, deterministic=True)
        # A deleted body (a purge, a finished queue entry) is overwritten with zeros in its
        # pages, not left in free pages for whoever reads the file raw. The write-ahead log
        # is truncated after a purge (``purge_body``) for the frames that held it.
        self._file.call(lambda: self._db.execute("PRAGMA secure_delete = ON"))
        bodyfiles.adopt(self._file, data_dir)
        cutoff = clock() - JOURNAL_DAYS * 86400
        self._file.call(
            lambda: self._db.execute("DELETE FROM relay_journal WHERE at < ?", (cutoff,))
        )

    @property
    def connection(self) -> sqlite3.Connection:
        """The SQLite connection, for diagnostics (tracing statements); the store's thread
        runs every statement of its own."""
        return self._db

    @property
    def file(self) -> Database:
        """The SQLite file of the holds, and its thread."""
        return self._file

    @property
    def commits(self) -> GroupCommit:
        """The writes queued for the file's thread, committed in batches (``groupcommit``)."""
        return self._commits

    async def _run(self, work: Callable[[], T]) -> T:
        return await self._file.run(work)

    def _write(self, work: Callable[[], T]) -> T:
        return self._file.write(work)

    # --- holds -----------------------------------------------------------------------------

    async def hold(self, new: NewHold, then: Consequences | None = None) -> tuple[Hold, bool]:
        hold, created, _ = await self._hold(new, then, None)
        return hold, created

    async def hold_and_relayed(
        self, new: NewHold, then: Consequences | None, journal_key: str
    ) -> tuple[Hold, bool, frozenset[str]]:
        return await self._hold(new, then, journal_key)

    async def _hold(
        self, new: NewHold, then: Consequences | None, journal_key: str | None
    ) -> tuple[Hold, bool, frozenset[str]]:
        # Everything but SQL is made before the write transaction, outside the writer's lock
        # (which serialises the workers): the hold as its row will read, what ``then`` makes
        # of it (the notices rendered and sealed, the audit records). When the key exists
        # already (a retry of the same message) all of that is thrown away, unseen.
        hold_id = secrets.token_hex(8)
        now = self._clock()
        row = tables.hold_row(hold_id, now, new)
        made = tables.fresh_hold(hold_id, now, new)
        audit, notices = then(made) if then is not None else ((), ())
        notice_rows = outbox.sealed(self._sealer, self._clock(), notices)
        sealed: list[bytes] = []

        def prepare() -> None:
            # Sealed on the store's thread, off the loop, and outside the writer's lock.
            sealed.append(self._sealer.seal(hold_id, new.message))

        def journal() -> frozenset[str]:
            return self._journal(journal_key) if journal_key is not None else frozenset()

        def insert() -> tuple[Hold, bool, list[Entry], frozenset[str]]:
            # Looked up under the writer's lock: another worker's hold of the same message is
            # committed or not yet begun, never half-way.
            existing = self._get_by_key(new.key)
            if existing is not None:
                return existing, False, [], journal()
            self._db.execute(tables.INSERT_HOLD, row)
            tables.insert_body(self._db, tables.HOLD_BODIES, hold_id, sealed[0])
            outbox.insert(self._db, notice_rows)
            return made, True, self._chain(audit), journal()

        try:
            hold, created, entries, relayed = await self._commits.write(insert, prepare=prepare)
        except sqlite3.IntegrityError:
            existing = await self._run(lambda: self._get_by_key(new.key))
            if existing is None:
                raise
            return existing, False, await self._run(journal)
        self._witness(entries)
        return hold, created, relayed

    async def get(self, hold_id: str) -> Hold | None:
        return await self._run(lambda: self._get(hold_id))

    def _get(self, hold_id: str) -> Hold | None:
        sql = f"SELECT {tables.COLUMNS} FROM holds WHERE id = ?"  # noqa: S608
        row = self._db.execute(sql, (hold_id,)).fetchone()
        return tables.hold_from_row(row) if row else None

    def _get_by_key(self, key: str) -> Hold | None:
        sql = f"SELECT {tables.COLUMNS} FROM holds WHERE key = ?"  # noqa: S608
        row = self._db.execute(sql, (key,)).fetchone()
        return tables.hold_from_row(row) if row else None

    async def message(self, hold_id: str) -> bytes:
        def read() -> bytes:
            row = self._db.execute(
                "SELECT body FROM hold_bodies WHERE hold_id = ?", (hold_id,)
            ).fetchone()
            if row is None:
                raise KeyError(hold_id)
            return bytes(row[0])

        return self._sealer.open(hold_id, await self._run(read))

    async def holds(self, query: HoldQuery) -> Sequence[Hold]:
        sql, values = queries.select_holds(tables.COLUMNS, query)
        return await self._run(
            lambda: [tables.hold_from_row(row) for row in self._db.execute(sql, values)]
        )

    async def count_holds(self, query: HoldQuery) -> int:
        sql, values = queries.count_holds(query)
        return await self._run(lambda: int(self._db.execute(sql, values).fetchone()[0]))

    async def update(
        self,
        hold_id: str,
        expect: frozenset[Status],
        change: HoldChange,
        audit: Sequence[AuditRecord] = (),
        notices: Sequence[NewNotice] = (),
    ) -> Hold | None:
        columns = tables.change_columns(change)
        assignments = ", ".join(f"{name} = ?" for name in columns)
        statuses = sorted(s.value for s in expect)
        sql = (
            f"UPDATE holds SET {assignments} WHERE id = ?"  # noqa: S608
            f" AND status IN ({', '.join('?' for _ in statuses)})"
        )

        notice_rows = outbox.sealed(self._sealer, self._clock(), notices)

        def change_it() -> tuple[Hold | None, list[Entry]]:
            if self._db.execute(sql, (*columns.values(), hold_id, *statuses)).rowcount != 1:
                return None, []
            if isinstance(change, SendLinks):
                links.insert(self._db, hold_id, change)
            entries = self._chain(audit)
            outbox.insert(self._db, notice_rows)
            return self._get(hold_id), entries

        changed, entries = await self._commits.write(change_it)
        self._witness(entries)
        return changed

    async def claim(
        self, hold_id: str, owner: str, now: float, stale_before: float, dead_owner: str = ""
    ) -> Hold | None:
        def take() -> bool:
            # Not "or it is ours": the web UI and the sweep of one process would both hold
            # the claim at once, and both deliver.
            cursor = self._db.execute(
                "UPDATE holds SET attempt_at = ?, attempt_by = ? WHERE id = ?"
                " AND status = 'releasing' AND (attempt_at IS NULL OR attempt_at < ?"
                " OR (? != '' AND attempt_by = ?))",
                (now, owner, hold_id, stale_before, dead_owner, dead_owner),
            )
            return cursor.rowcount == 1

        def run() -> Hold | None:
            return self._get(hold_id) if self._write(take) else None

        return await self._run(run)

    async def purge_body(self, hold_id: str, audit: Sequence[AuditRecord] = ()) -> bool:
        def purge() -> bool:
            # The row and the body change in one transaction: a key rotation re-sealing the
            # body (``sqlite.rotation``, under the same writer lock) cannot bring it back.
            existed = (
                self._db.execute("DELETE FROM hold_bodies WHERE hold_id = ?", (hold_id,)).rowcount
                == 1
            )
            self._db.execute(
                "UPDATE holds SET purged_at = ? WHERE id = ? AND purged_at IS NULL",
                (self._clock(), hold_id),
            )
            self._append(audit)
            return existed

        def run() -> bool:
            existed = self._write(purge)
            self._forget()
            return existed

        return await self._run(run)

    def _forget(self) -> None:
        """After a delete of a body: its pages are zeroed in the file (secure_delete), but the
        write-ahead log still has the frames that wrote it. A checkpoint copies the zeroed
        pages into the database and, when no reader needs the log, truncates it to nothing
        (https://www.sqlite.org/pragma.html#pragma_wal_checkpoint). A reader of another
        process holding the log makes it partial: the old frames are then overwritten as the
        log is reused, and the next purge tries again."""
        # Waiting for readers only briefly: the thread's holds queue behind it meanwhile.
        (wait,) = self._db.execute("PRAGMA busy_timeout").fetchone()
        self._db.execute("PRAGMA busy_timeout = 200")
        try:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        finally:
            self._db.execute(f"PRAGMA busy_timeout = {int(wait)}")

    # --- relay journal ---------------------------------------------------------------------

    async def relayed(self, key: str) -> frozenset[str]:
        return await self._commits.read(lambda: self._journal(key))

    def _journal(self, key: str) -> frozenset[str]:
        rows = self._db.execute("SELECT recipient FROM relay_journal WHERE key = ?", (key,))
        return frozenset(row[0] for row in rows)

    async def record_relayed(
        self, key: str, recipients: Sequence[str], audit: Sequence[AuditRecord] = ()
    ) -> None:
        now = self._clock()
        rows = [(key, recipient, now) for recipient in recipients]

        def insert() -> list[Entry]:
            self._db.executemany("INSERT OR IGNORE INTO relay_journal VALUES (?, ?, ?)", rows)
            return self._chain(audit)

        # Concurrent relays' records share one COMMIT (one fsync); each is durable before
        # this returns, so before the 250 of flagged mail.
        self._witness(await self._commits.write(insert))

    # --- audit trail -----------------------------------------------------------------------

    async def append_audit(self, audit: Sequence[AuditRecord]) -> None:
        self._witness(await self._commits.write(lambda: self._chain(audit)))

    def _append(self, records: Sequence[AuditRecord]) -> None:
        self._witness(self._chain(records))

    def _chain(self, records: Sequence[AuditRecord]) -> list[Entry]:
        """Append ``records`` to the chain, inside the caller's write transaction."""
        return trail.append(self._db, self._audit_key, self._clock(), records)

    def _witness(self, entries: Sequence[Entry]) -> None:
        witness_appended(self._log, entries)

    async def audit_entries(self, since: float | None = None) -> Sequence[Entry]:
        return await self._run(lambda: trail.since(self._db, since))

    async def audit_query(self, query: AuditQuery) -> Sequence[Entry]:
        return await self._run(lambda: trail.select(self._db, query))

    async def count_audit(self, query: AuditQuery) -> int:
        return await self._run(lambda: trail.count(self._db, query))

    async def audit_events(self) -> Sequence[str]:
        return await self._run(lambda: trail.events(self._db))

    async def verify_audit(self) -> tuple[int, Problem | None]:
        return await self._run(lambda: trail.verify(self._db, self._audit_key))

    async def audit_head(self) -> tuple[int, str] | None:
        return await self._run(lambda: trail.head(self._db))

    async def audit_entry(self, seq: int) -> Entry | None:
        return await self._run(lambda: trail.entry(self._db, seq))

    # --- outbox ----------------------------------------------------------------------------

    async def queue_notices(
        self, notices: Sequence[NewNotice], audit: Sequence[AuditRecord] = ()
    ) -> None:
        rows = outbox.sealed(self._sealer, self._clock(), notices)

        def queue() -> list[Entry]:
            outbox.insert(self._db, rows)
            return self._chain(audit)

        self._witness(await self._commits.write(queue))

    async def due_notices(self, now: float, limit: int = 50) -> Sequence[Notice]:
        rows = await self._run(lambda: self._write(lambda: outbox.claim_due(self._db, now, limit)))
        return outbox.opened(self._sealer, rows)

    async def notice_sent(self, notice_id: str, audit: Sequence[AuditRecord] = ()) -> None:
        await self.notices_sent([(notice_id, audit)])

    async def notices_sent(self, marks: Sequence[tuple[str, Sequence[AuditRecord]]]) -> None:
        def mark() -> list[Entry]:
            outbox.sent(self._db, [notice_id for notice_id, _ in marks], self._clock())
            return self._chain([record for _, audit in marks for record in audit])

        self._witness(await self._commits.write(mark))

    async def notice_failed(self, notice_id: str, error: str, retry_at: float | None) -> None:
        await self._commits.write(lambda: outbox.failed(self._db, notice_id, error, retry_at))

    # --- probe results -----------------------------------------------------------------------

    async def record_probes(self, found: Sequence[ProbeRecord]) -> None:
        def write() -> None:
            for probe in found:
                probes.record(self._db, probe)

        await self._run(lambda: self._write(write))

    async def last_probes(self) -> dict[str, ProbeRecord]:
        return await self._run(lambda: probes.last(self._db))

    @property
    def bodies(self) -> rotation.Bodies:
        """The sealed bodies, for a key rotation and a backup's census."""
        return rotation.Bodies(self._file, self._sealer)

    async def close(self) -> None:
        await self._file.close()
