"""Group commit: the writes waiting for one SQLite file's thread share one transaction.

With ``synchronous=FULL`` every COMMIT is an fsync of the write-ahead log, and ``BEGIN
IMMEDIATE`` takes the file's one writer lock, also across processes. One transaction per
write makes concurrent sessions of a worker queue behind each other's fsyncs. Here a write is
queued; the file's thread takes every write waiting at that moment (up to ``limit``) and runs
them in one transaction, each under its own SAVEPOINT, with one COMMIT. Nobody waits longer
than before: a lone write is a batch of one and starts at once; under load the batch is what
arrived while the previous one was committing.

The rules that keep "250 means durable":

* A caller's future is settled only after the COMMIT that covers its write (or with the error
  that kept it out). Nothing is answered early.
* An item's ``prepare`` (sealing its body) runs on the thread before the transaction, so
  that nothing but SQL runs while the writer's lock is held; an item whose ``prepare`` fails
  fails alone, before the transaction.
* One failing item fails alone: its SAVEPOINT is rolled back and the others go on. If SQLite
  rolled back the whole transaction (it does on some I/O and memory errors, "Response To
  Errors Within A Transaction" in its documentation), the others are run again in a new one.

Reads go through the same queue (``read``): they run on the thread before the batch's
transaction, so a read and the writes beside it cost the thread one hop together.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from gateway.store.sqlite.database import Database

T = TypeVar("T")


@dataclass(eq=False)
class _Item:
    work: Callable[[], Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    write: bool
    prepare: Callable[[], None] | None = None
    outcome: tuple[bool, Any] | None = field(default=None)  # (ok, result or exception)


class GroupCommit:
    """The queue of writes (and reads) of one ``Database``, run on its thread in batches."""

    def __init__(self, database: Database, limit: int = 64) -> None:
        self._database = database
        self._limit = limit
        self._lock = threading.Lock()
        self._pending: list[_Item] = []
        self._scheduled = False
        self.batches = 0  # how many transactions the writes took (tests, diagnostics)

    @property
    def waiting(self) -> int:
        """How many writes and reads are queued and not yet taken into a batch."""
        with self._lock:
            return len(self._pending)

    async def write(
        self,
        work: Callable[[], T],
        *,
        prepare: Callable[[], None] | None = None,
    ) -> T:
        """Run ``work`` (SQL only: it runs while the file's writer lock is held) in a shared
        write transaction; its result once that transaction is committed. ``prepare`` runs
        first, outside the transaction."""
        return cast(T, await self._queue(work, True, prepare))

    async def read(self, work: Callable[[], T]) -> T:
        """Run ``work`` on the file's thread, outside any transaction, with the next batch."""
        return cast(T, await self._queue(work, False, None))

    async def _queue(
        self,
        work: Callable[[], Any],
        write: bool,
        prepare: Callable[[], None] | None,
    ) -> Any:
        loop = asyncio.get_running_loop()
        item = _Item(work, loop, loop.create_future(), write, prepare)
        with self._lock:
            self._pending.append(item)
            start = not self._scheduled
            self._scheduled = True
        if start:
            self._submit()
        return await item.future

    def _submit(self) -> None:
        try:
            self._database.submit(self._run_next)
        except RuntimeError as exc:  # the file was closed: nothing queued can run now
            with self._lock:
                stranded, self._pending = self._pending, []
                self._scheduled = False
            for item in stranded:
                item.outcome = (False, exc)
            _settle(stranded)

    def _run_next(self) -> None:
        """One batch, on the file's thread; then, if more arrived meanwhile, the next batch
        goes to the back of the thread's queue (the file's other work is not starved)."""
        with self._lock:
            batch, self._pending = self._pending[: self._limit], self._pending[self._limit :]
        try:
            self._run_batch(batch)
        finally:
            _settle(batch)
            with self._lock:
                again = bool(self._pending)
                self._scheduled = again
            if again:
                self._submit()

    def _run_batch(self, batch: list[_Item]) -> None:
        for item in batch:
            if not item.write:
                item.outcome = _attempt(item.work)
        writes = [item for item in batch if item.write and self._prepared(item)]
        while writes:
            writes = self._transaction(writes)

    def _prepared(self, item: _Item) -> bool:
        if item.prepare is None:
            return True
        item.outcome = _attempt(item.prepare)
        if item.outcome[0]:
            item.outcome = None
            return True
        return False

    def _transaction(self, items: list[_Item]) -> list[_Item]:
        """Run ``items`` in one transaction. Returns the items to run again (in a new one)
        when SQLite rolled this one back under them; empty when all are settled."""
        db = self._database.db
        try:
            db.execute("BEGIN IMMEDIATE")
        except Exception as exc:
            for item in items:
                item.outcome = (False, exc)
            return []
        self.batches += 1
        try:
            return self._items(db, items)
        except BaseException:  # an interrupt, or SQLite refusing a savepoint: none of it stands
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def _items(self, db: sqlite3.Connection, items: list[_Item]) -> list[_Item]:
        done: list[tuple[_Item, Any]] = []
        for index, item in enumerate(items):
            db.execute("SAVEPOINT item")
            ok, value = _attempt(item.work)
            if ok:
                db.execute("RELEASE item")
                done.append((item, value))
                continue
            item.outcome = (False, value)
            if not db.in_transaction:  # SQLite gave the whole transaction up
                return [*(i for i, _ in done), *items[index + 1 :]]
            db.execute("ROLLBACK TO item")
            db.execute("RELEASE item")
        try:
            db.execute("COMMIT")
        except BaseException as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            for item, _ in done:
                item.outcome = (False, exc)
            if not isinstance(exc, Exception):
                raise
            return []
        for item, value in done:
            item.outcome = (True, value)
        return []


def _attempt(work: Callable[[], Any]) -> tuple[bool, Any]:
    try:
        return True, work()
    except Exception as exc:
        return False, exc


def _settle(batch: list[_Item]) -> None:
    """Hand each outcome to its caller's loop: one wake-up per loop for the whole batch."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_Item]] = {}
    for item in batch:
        by_loop.setdefault(item.loop, []).append(item)
    for loop, items in by_loop.items():
        # A closed loop (RuntimeError): nobody waits for these any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_resolve, items)


def _resolve(items: list[_Item]) -> None:
    for item in items:
        if item.future.done():  # the caller was cancelled; its write stands or not as told
            continue
        outcome = item.outcome or (False, sqlite3.OperationalError("the write did not run"))
        ok, value = outcome
        if ok:
            item.future.set_result(value)
        else:
            item.future.set_exception(value)
