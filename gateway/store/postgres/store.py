"""The shared hold store: every node's holds, journal, audit trail, outbox, delivery queue and
last probes in one PostgreSQL database (``[store] backend = "postgresql"``).

A COMMIT is the durability point: a hold's or a queue entry's sealed body is written in the
same transaction as the row that promises it, with its audit entries and notices, so there is
no file to lose and no row without its message. Sealing (AES-256-GCM, ``store.crypto``) happens
on the node, under a key the database never sees. The SQL lives in small modules of
connection functions (``holdrows``, ``queue``, ``trail``, ``outbox``, ``probes``).

Within a transaction the rows are written first and the audit entries last, as it commits
(``_Work``): the audit lock is then held for the shortest time, and is never taken before a row
lock (no lock cycle).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from psycopg import AsyncConnection

from gateway import logs
from gateway.core.auditchain import Entry, Problem
from gateway.errors import SchemaMismatch, StoreUnavailable
from gateway.store.changes import HoldChange, SendLinks
from gateway.store.crypto import Sealer
from gateway.store.headlog import witness_appended
from gateway.store.postgres import holdrows, links, outbox, probes, queries, queue, trail
from gateway.store.postgres.database import Database, check_schema
from gateway.store.postgres.rotation import PgBodies
from gateway.store.postgres.tables import SCHEMA_VERSION
from gateway.store.probes import ProbeRecord
from gateway.store.queries import AuditQuery, HoldQuery
from gateway.store.queued import NewQueued, Queued, QueuedRecipient
from gateway.store.records import (
    AuditRecord,
    Consequences,
    Hold,
    NewHold,
    NewNotice,
    Notice,
    Status,
)

# Journal entries outlive any MTA retry schedule (Postfix gives up after 5 days by default).
JOURNAL_DAYS = 7


class _Work:
    """One write transaction: its connection, the audit records to append when it commits, and
    the entries they became (logged once it has committed, so the log never witnesses a head
    that was rolled back)."""

    def __init__(self, store: PgStore, conn: AsyncConnection[Any]) -> None:
        self.conn = conn
        self.records: list[AuditRecord] = []
        self.appended: list[Entry] = []
        self._store = store

    def append(self, records: Sequence[AuditRecord]) -> None:
        """Append ``records`` to the chain as the transaction commits: the audit lock is then
        taken after every other write, and held over two round trips only (``trail.append``)."""
        self.records += records

    async def notify(self, notices: Sequence[NewNotice]) -> None:
        await outbox.enqueue(self.conn, self._store.sealer, self._store.now(), notices)

    async def finish(self) -> None:
        """The transaction's last statements: its audit entries."""
        store = self._store
        self.appended = await trail.append(self.conn, store.audit_key, store.now(), self.records)


class PgStore(links.PgLinks):
    """Implements ``HoldStore`` (Holds, RelayJournal, AuditTrail, NoticeOutbox, DeliveryQueue,
    ProbeResults, and through ``postgres.links`` SecureLinks) on a ``Database``; ``open``
    before use, ``close`` after."""

    def __init__(
        self,
        db: Database,
        sealer: Sealer,
        audit_key: bytes,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.sealer = sealer
        self.audit_key = audit_key
        self.now = clock
        self._log = logs.get("gateway.store")

    async def open(self) -> None:
        """Open the pool and check the schema (SchemaMismatch says which command to run);
        then forget journal entries older than JOURNAL_DAYS."""
        await self.db.open()
        try:
            await check_schema(self.db, SCHEMA_VERSION)
            async with self.db.transaction() as conn:
                cutoff = self.now() - JOURNAL_DAYS * 86400
                await conn.execute("DELETE FROM relay_journal WHERE at < %s", (cutoff,))
        except (SchemaMismatch, StoreUnavailable):
            await self.db.close()
            raise

    @property
    def bodies(self) -> PgBodies:
        """The sealed bodies, for a key rotation."""
        return PgBodies(self.db, self.sealer)

    async def close(self) -> None:
        await self.db.close()

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[_Work]:
        async with self.db.write() as conn:
            work = _Work(self, conn)
            yield work
            await work.finish()
        witness_appended(self._log, work.appended)

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
        # What ``then`` makes of the new hold (notices rendered and sealed, audit records) is
        # made before the transaction opens, from the hold as its row will read; the
        # transaction only inserts. When the key exists already, it is thrown away unseen.
        hold_id = secrets.token_hex(8)
        now = self.now()
        row = holdrows.values(hold_id, now, new)
        made = holdrows.fresh(hold_id, now, new)
        audit, notices = then(made) if then is not None else ((), ())
        notice_rows = outbox.sealed(self.sealer, self.now(), notices)
        sealed = self.sealer.seal(hold_id, new.message)
        existing = None
        async with self._write() as work:
            if await holdrows.insert(work.conn, row, sealed):
                await outbox.insert(work.conn, notice_rows)
                work.append(audit)
            else:
                # An earlier delivery of the message, or another node's at this moment (the
                # insert waited for its commit): the hold that exists is the answer.
                existing = await holdrows.by_key(work.conn, new.key)
                if existing is None:
                    raise LookupError(f"the hold with key {new.key} went while it was read")
            relayed = await _journal(work.conn, journal_key) if journal_key is not None else None
        if existing is not None:
            return existing, False, relayed or frozenset()
        return made, True, relayed or frozenset()

    async def get(self, hold_id: str) -> Hold | None:
        async with self.db.statement() as conn:
            return await holdrows.get(conn, hold_id)

    async def message(self, hold_id: str) -> bytes:
        async with self.db.statement() as conn:
            sealed = await holdrows.body(conn, hold_id)
        if sealed is None:
            raise KeyError(hold_id)
        return self.sealer.open(hold_id, sealed)

    async def holds(self, query: HoldQuery) -> Sequence[Hold]:
        sql, values = queries.select_holds(holdrows.COLUMNS, query)
        async with self.db.transaction() as conn:
            rows = await (await conn.execute(sql, values)).fetchall()
        return [holdrows.from_row(row) for row in rows]

    async def count_holds(self, query: HoldQuery) -> int:
        sql, values = queries.count_holds(query)
        async with self.db.transaction() as conn:
            found = await (await conn.execute(sql, values)).fetchone()
        return int(found[0]) if found else 0

    async def update(
        self,
        hold_id: str,
        expect: frozenset[Status],
        change: HoldChange,
        audit: Sequence[AuditRecord] = (),
        notices: Sequence[NewNotice] = (),
    ) -> Hold | None:
        async with self._write() as work:
            changed = await holdrows.update(work.conn, hold_id, expect, change)
            if changed is not None:
                if isinstance(change, SendLinks):
                    await links.insert(work.conn, hold_id, change)
                await work.notify(notices)
                work.append(audit)
        return changed

    async def claim(
        self, hold_id: str, owner: str, now: float, stale_before: float, dead_owner: str = ""
    ) -> Hold | None:
        async with self.db.transaction() as conn:
            return await holdrows.claim(conn, hold_id, owner, now, stale_before, dead_owner)

    async def purge_body(self, hold_id: str, audit: Sequence[AuditRecord] = ()) -> bool:
        async with self._write() as work:
            existed = await holdrows.purge_body(work.conn, hold_id, self.now())
            work.append(audit)
        return existed

    # --- relay journal ---------------------------------------------------------------------

    async def relayed(self, key: str) -> frozenset[str]:
        async with self.db.statement() as conn:
            return await _journal(conn, key)

    async def record_relayed(
        self, key: str, recipients: Sequence[str], audit: Sequence[AuditRecord] = ()
    ) -> None:
        now = self.now()
        async with self._write() as work:
            async with work.conn.cursor() as cursor:
                await cursor.executemany(
                    "INSERT INTO relay_journal (key, recipient, at) VALUES (%s, %s, %s)"
                    " ON CONFLICT DO NOTHING",
                    # In one order on every node: two nodes recording the same recipients
                    # wait on each other's rows instead of deadlocking.
                    [(key, recipient, now) for recipient in sorted(set(recipients))],
                )
            work.append(audit)

    # --- audit trail -----------------------------------------------------------------------

    async def append_audit(self, audit: Sequence[AuditRecord]) -> None:
        async with self._write() as work:
            work.append(audit)

    async def audit_entries(self, since: float | None = None) -> Sequence[Entry]:
        async with self.db.transaction() as conn:
            return await trail.since(conn, since)

    async def audit_query(self, query: AuditQuery) -> Sequence[Entry]:
        async with self.db.transaction() as conn:
            return await trail.select(conn, query)

    async def count_audit(self, query: AuditQuery) -> int:
        async with self.db.transaction() as conn:
            return await trail.count(conn, query)

    async def audit_events(self) -> Sequence[str]:
        async with self.db.transaction() as conn:
            return await trail.events(conn)

    async def verify_audit(self) -> tuple[int, Problem | None]:
        async with self.db.transaction() as conn:
            return await trail.verify(conn, self.audit_key)

    async def audit_entry(self, seq: int) -> Entry | None:
        async with self.db.statement() as conn:
            return await trail.entry(conn, seq)

    async def audit_head(self) -> tuple[int, str] | None:
        async with self.db.statement() as conn:
            return await trail.head(conn)

    # --- outbox ----------------------------------------------------------------------------

    async def queue_notices(
        self, notices: Sequence[NewNotice], audit: Sequence[AuditRecord] = ()
    ) -> None:
        async with self._write() as work:
            await work.notify(notices)
            work.append(audit)

    async def due_notices(self, now: float, limit: int = 50) -> Sequence[Notice]:
        async with self.db.transaction() as conn:
            rows = await outbox.claim_due(conn, now, limit)
        return outbox.opened(self.sealer, rows)

    async def notice_sent(self, notice_id: str, audit: Sequence[AuditRecord] = ()) -> None:
        await self.notices_sent([(notice_id, audit)])

    async def notices_sent(self, marks: Sequence[tuple[str, Sequence[AuditRecord]]]) -> None:
        async with self._write() as work:
            await outbox.sent(work.conn, [notice_id for notice_id, _ in marks], self.now())
            work.append([record for _, audit in marks for record in audit])

    async def notice_failed(self, notice_id: str, error: str, retry_at: float | None) -> None:
        async with self.db.transaction() as conn:
            await outbox.failed(conn, notice_id, error, retry_at)

    # --- probe results ---------------------------------------------------------------------

    async def record_probes(self, found: Sequence[ProbeRecord]) -> None:
        async with self.db.transaction() as conn:
            await probes.record(conn, found)

    async def last_probes(self) -> dict[str, ProbeRecord]:
        async with self.db.transaction() as conn:
            return await probes.last(conn)

    # --- delivery queue --------------------------------------------------------------------

    async def enqueue(
        self, new: NewQueued, audit: Sequence[AuditRecord] = ()
    ) -> tuple[Queued, bool]:
        queue_id = secrets.token_hex(8)
        sealed = self.sealer.seal(f"queue:{queue_id}", new.message)
        existing = None
        async with self._write() as work:
            made = await queue.insert(work.conn, queue_id, self.now(), new, sealed)
            if made is None:
                existing = await queue.by_key(work.conn, new.key)
            else:
                work.append([_with_queue_id(record, queue_id) for record in audit])
        if made is not None:
            return made, True
        if existing is None:
            raise LookupError(f"the queue entry with key {new.key} went while it was read")
        return existing, False

    async def queued(self, queue_id: str) -> Queued | None:
        async with self.db.statement() as conn:
            return await queue.get(conn, queue_id)

    async def queued_message(self, queue_id: str) -> bytes:
        async with self.db.statement() as conn:
            sealed = await queue.body(conn, queue_id)
        if sealed is None:
            raise KeyError(queue_id)
        return self.sealer.open(f"queue:{queue_id}", sealed)

    async def queue_entries(self, finished: bool = False, limit: int = 200) -> Sequence[Queued]:
        async with self.db.transaction() as conn:
            return await queue.entries(conn, finished, limit)

    async def claim_queued(
        self, now: float, lease_until: float, owner: str, limit: int = 20
    ) -> Sequence[Queued]:
        async with self.db.transaction() as conn:
            return await queue.claim(conn, now, lease_until, owner, limit)

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
        now = self.now()
        async with self._write() as work:
            if not await queue.progress(
                work.conn, queue_id, owner, recipients, next_at, last_error, now
            ):
                return None
            await work.notify(notices)
            work.append(audit)
            return await queue.get(work.conn, queue_id)

    async def retry_queued(self, queue_id: str, now: float) -> bool:
        async with self.db.transaction() as conn:
            return await queue.retry(conn, queue_id, now)

    async def purge_queued(
        self,
        queue_id: str,
        audit: Sequence[AuditRecord] = (),
        notices: Sequence[NewNotice] = (),
    ) -> Queued | None:
        async with self._write() as work:
            if not await queue.purge(work.conn, queue_id, self.now()):
                return None
            await work.notify(notices)
            work.append(audit)
            return await queue.get(work.conn, queue_id)

    async def prune_queued(self, before: float) -> int:
        async with self.db.transaction() as conn:
            return await queue.prune(conn, before)

    async def queue_depth(self) -> int:
        async with self.db.transaction() as conn:
            return await queue.depth(conn)

    async def next_queued_at(self) -> float | None:
        async with self.db.transaction() as conn:
            return await queue.next_due(conn)


def _with_queue_id(record: AuditRecord, queue_id: str) -> AuditRecord:
    """The audit entries of a new entry learn its id here, as a hold's do in ``hold``."""
    return AuditRecord(
        record.event, record.hold_id, record.actor, {**record.data, "queue_id": queue_id}
    )


async def _journal(conn: AsyncConnection[Any], key: str) -> frozenset[str]:
    """The recipients the relay journal holds under ``key``."""
    cursor = await conn.execute("SELECT recipient FROM relay_journal WHERE key = %s", (key,))
    return frozenset(row[0] for row in await cursor.fetchall())
