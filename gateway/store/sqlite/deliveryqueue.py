"""The delivery queue on SQLite (``DeliveryQueue``): the methods ``SqliteStore`` takes from
``SqliteQueue``, on the store's file and thread.

A queue entry is written as a hold is (``store``): its sealed body in the transaction of its
row, through the group commit, shared with the other writes waiting. A finished entry's body
goes in the transaction that finishes it. The SQL itself is in ``sqlite.queue``.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Callable, Sequence

from gateway.core.auditchain import Entry
from gateway.store.crypto import Sealer
from gateway.store.queued import NewQueued, Queued, QueuedRecipient
from gateway.store.records import AuditRecord, NewNotice
from gateway.store.sqlite import outbox, queue, tables
from gateway.store.sqlite.database import Database
from gateway.store.sqlite.groupcommit import GroupCommit


class SqliteQueue:
    """The ``DeliveryQueue`` half of ``SqliteStore``."""

    _file: Database
    _db: sqlite3.Connection
    _sealer: Sealer
    _clock: Callable[[], float]
    _commits: GroupCommit

    # SqliteStore's audit chain, inside the caller's transaction: append, or append and
    # return the entries (to log once committed, ``_witness``).
    _append: Callable[[Sequence[AuditRecord]], None]
    _chain: Callable[[Sequence[AuditRecord]], list[Entry]]
    _witness: Callable[[Sequence[Entry]], None]

    async def enqueue(
        self, new: NewQueued, audit: Sequence[AuditRecord] = ()
    ) -> tuple[Queued, bool]:
        # As a hold (``hold``): the sealed body in the transaction of its row, shared with
        # the other writes waiting.
        queue_id = secrets.token_hex(8)
        records = [_with_queue_id(record, queue_id) for record in audit]
        sealed: list[bytes] = []

        def prepare() -> None:
            sealed.append(self._sealer.seal(f"queue:{queue_id}", new.message))

        def insert() -> tuple[Queued, bool, list[Entry]]:
            existing = queue.by_key(self._db, new.key)
            if existing is not None:
                return existing, False, []
            queue.insert(self._db, queue_id, self._clock(), new)
            tables.insert_body(self._db, tables.QUEUE_BODIES, queue_id, sealed[0])
            entries = self._chain(records)
            entry = queue.get(self._db, queue_id)
            assert entry is not None
            return entry, True, entries

        try:
            entry, created, entries = await self._commits.write(insert, prepare=prepare)
        except sqlite3.IntegrityError:
            existing = await self._file.run(lambda: queue.by_key(self._db, new.key))
            if existing is None:
                raise
            return existing, False
        self._witness(entries)
        return entry, created

    async def queued(self, queue_id: str) -> Queued | None:
        return await self._file.run(lambda: queue.get(self._db, queue_id))

    async def queued_message(self, queue_id: str) -> bytes:
        def read() -> bytes:
            row = self._db.execute(
                "SELECT body FROM queue_bodies WHERE queue_id = ?", (queue_id,)
            ).fetchone()
            if row is None:
                raise KeyError(queue_id)
            return bytes(row[0])

        return self._sealer.open(f"queue:{queue_id}", await self._file.run(read))

    async def queue_entries(self, finished: bool = False, limit: int = 200) -> Sequence[Queued]:
        return await self._file.run(lambda: queue.entries(self._db, finished, limit))

    async def claim_queued(
        self, now: float, lease_until: float, owner: str, limit: int = 20
    ) -> Sequence[Queued]:
        return await self._file.run(
            lambda: self._file.write(lambda: queue.claim(self._db, now, lease_until, owner, limit))
        )

    async def queue_progress(
        self,
        queue_id: str,
        owner: str,
        recipients: Sequence[QueuedRecipient],
        next_at: float,
        last_error: str,
        audit: Sequence[AuditRecord] = (),
        notices: Sequence[NewNotice] = (),
    ) -> Queued | None:
        rows = outbox.sealed(self._sealer, self._clock(), notices)

        def write() -> tuple[Queued | None, list[Entry]]:
            now = self._clock()
            if not queue.progress(self._db, queue_id, owner, recipients, next_at, last_error, now):
                return None, []
            entries = self._chain(audit)
            outbox.insert(self._db, rows)
            return self._finish(queue.get(self._db, queue_id)), entries

        # Concurrent deliveries' outcomes share a COMMIT (``groupcommit``).
        entry, entries = await self._commits.write(write)
        self._witness(entries)
        return entry

    async def retry_queued(self, queue_id: str, now: float) -> bool:
        return await self._file.run(
            lambda: self._file.write(lambda: queue.retry(self._db, queue_id, now))
        )

    async def purge_queued(
        self,
        queue_id: str,
        audit: Sequence[AuditRecord] = (),
        notices: Sequence[NewNotice] = (),
    ) -> Queued | None:
        def write() -> Queued | None:
            now = self._clock()
            if not queue.purge(self._db, queue_id, now):
                return None
            self._append(audit)
            outbox.enqueue(self._db, self._sealer, now, notices)
            return self._finish(queue.get(self._db, queue_id))

        return await self._file.run(lambda: self._file.write(write))

    def _finish(self, entry: Queued | None) -> Queued | None:
        """A finished entry's body is no longer needed: it goes in the transaction that
        finished the entry (inside the caller's write transaction)."""
        if entry is not None and entry.done_at is not None:
            self._db.execute("DELETE FROM queue_bodies WHERE queue_id = ?", (entry.id,))
        return entry

    async def prune_queued(self, before: float) -> int:
        return await self._file.run(lambda: self._file.write(lambda: queue.prune(self._db, before)))

    async def queue_depth(self) -> int:
        return await self._file.run(lambda: queue.depth(self._db))

    async def next_queued_at(self) -> float | None:
        return await self._file.run(lambda: queue.next_due(self._db))


def _with_queue_id(record: AuditRecord, queue_id: str) -> AuditRecord:
    """The audit entries of a new entry learn its id here, as a hold's do in ``hold``."""
    return AuditRecord(
        record.event, record.hold_id, record.actor, {**record.data, "queue_id": queue_id}
    )
