"""Re-sealing SqliteStore's bodies under the current key (``gateway.store.rotation``): the
hold and queue files, and the outbox's notices.

Each body moves in its own write transaction (BEGIN IMMEDIATE): a purge of the hold
(``SqliteStore.purge_body`` deletes its file under the same lock) or the end of a queue entry
cannot slip in between the read and the rename, so a deleted body is never brought back.
The rename is atomic (``safeio.write_atomic``): a kill leaves the old blob or the new one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

from gateway.errors import DecryptError
from gateway.store.crypto import Sealer
from gateway.store.rotation import KeyCensus, Resealed
from gateway.store.safeio import write_atomic
from gateway.store.sqlite.database import Database

MOVED, CURRENT, GONE, UNREADABLE = "moved", "current", "gone", "unreadable"

# Rows whose body is still kept: (owner of the blob, how to find the row again).
HOLDS_KEPT = "SELECT id FROM holds WHERE purged_at IS NULL ORDER BY created_at"
HOLD_KEPT = "SELECT 1 FROM holds WHERE id = ? AND purged_at IS NULL"
QUEUE_KEPT = "SELECT id FROM queue WHERE done_at IS NULL ORDER BY created_at"
ENTRY_KEPT = "SELECT 1 FROM queue WHERE id = ? AND done_at IS NULL"


class Bodies:
    """Where SqliteStore keeps its sealed bodies."""

    def __init__(self, file: Database, sealer: Sealer, held: Path, queue: Path) -> None:
        self._file, self._sealer, self._held, self._queue = file, sealer, held, queue

    def _files(self) -> Iterator[tuple[str, Path, str, str]]:
        """(owner, path, row query, row id) of every body file a row still needs."""
        db = self._file.db
        for (hold_id,) in self._file.call(lambda: db.execute(HOLDS_KEPT).fetchall()):
            yield hold_id, self._held / f"{hold_id}.msg", HOLD_KEPT, hold_id
        for (queue_id,) in self._file.call(lambda: db.execute(QUEUE_KEPT).fetchall()):
            yield f"queue:{queue_id}", self._queue / f"{queue_id}.msg", ENTRY_KEPT, queue_id

    def _notices(self) -> list[str]:
        db = self._file.db
        return [row[0] for row in self._file.call(lambda: db.execute("SELECT id FROM outbox"))]

    async def reseal(self) -> Resealed:
        found = Resealed()
        for owner, path, kept, row_id in list(self._files()):
            _tally(
                found, owner, await self._run(partial(self._file_step, owner, path, kept, row_id))
            )
        for notice_id in self._notices():
            owner = f"notice:{notice_id}"
            _tally(found, owner, await self._run(partial(self._notice_step, owner, notice_id)))
        return found

    async def _run(self, step: Callable[[], str]) -> str:
        return await self._file.run(lambda: self._file.write(step))

    def _file_step(self, owner: str, path: Path, kept: str, row_id: str) -> str:
        if self._file.db.execute(kept, (row_id,)).fetchone() is None:
            return GONE
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            return GONE
        outcome, new = self._resealed(owner, blob)
        if new is not None:
            write_atomic(path, new)
        return outcome

    def _notice_step(self, owner: str, notice_id: str) -> str:
        db = self._file.db
        row = db.execute("SELECT message FROM outbox WHERE id = ?", (notice_id,)).fetchone()
        if row is None:
            return GONE
        outcome, new = self._resealed(owner, bytes(row[0]))
        if new is not None:
            db.execute("UPDATE outbox SET message = ? WHERE id = ?", (new, notice_id))
        return outcome

    def _resealed(self, owner: str, blob: bytes) -> tuple[str, bytes | None]:
        if self._sealer.is_current(blob):
            return CURRENT, None
        try:
            return MOVED, self._sealer.reseal(owner, blob)
        except DecryptError:
            return UNREADABLE, None

    async def census(self) -> KeyCensus:
        """Which keys the bodies the rows still need are sealed under."""
        return await self._file.run(self._census)

    def _census(self) -> KeyCensus:
        found = KeyCensus()
        for _owner, path, _kept, _row_id in self._files():
            try:
                found.count(path.read_bytes())
            except FileNotFoundError:
                continue
        db = self._file.db
        for (message,) in self._file.call(
            lambda: db.execute("SELECT message FROM outbox").fetchall()
        ):
            found.count(bytes(message))
        return found


def census_of(db: sqlite3.Connection, held: Path, queue: Path) -> tuple[KeyCensus, list[Path]]:
    """The keys of a snapshot's bodies (``db`` a backup's file), and the body files it needs."""
    found, files = KeyCensus(), []
    for query, folder in ((HOLDS_KEPT, held), (QUEUE_KEPT, queue)):
        for (row_id,) in db.execute(query).fetchall():
            path = folder / f"{row_id}.msg"
            files.append(path)
            if path.exists():
                found.count(path.read_bytes())
    for (message,) in db.execute("SELECT message FROM outbox").fetchall():
        found.count(bytes(message))
    return found, files


def _tally(found: Resealed, owner: str, outcome: str) -> None:
    if outcome == MOVED:
        found.moved += 1
    elif outcome == CURRENT:
        found.current += 1
    elif outcome == UNREADABLE:
        found.unreadable.append(owner)
