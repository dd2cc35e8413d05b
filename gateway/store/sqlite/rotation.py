"""Re-sealing SqliteStore's bodies under the current key (``gateway.store.rotation``): the
holds' and the queue's bodies, and the outbox's notices, all rows of the database.

Each body moves in its own write transaction (BEGIN IMMEDIATE): a purge of the hold
(``SqliteStore.purge_body`` deletes its body under the same lock) or the end of a queue entry
cannot slip in between the read and the update, so a deleted body is never brought back. A
kill leaves the old sealed body or the new one, as the transaction committed or not.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from functools import partial

from gateway.errors import DecryptError
from gateway.store.crypto import Sealer
from gateway.store.rotation import KeyCensus, Resealed
from gateway.store.sqlite.database import Database

MOVED, CURRENT, GONE, UNREADABLE = "moved", "current", "gone", "unreadable"


class _Kind:
    """One table of sealed bodies: how its rows are listed, read and written back."""

    def __init__(self, table: str, key: str, column: str, owner: str, kept: str = "") -> None:
        self.owner = owner  # the associated data of a body: owner + its row's id
        self.select_ids = f"SELECT {key} FROM {table}{kept}"  # noqa: S608
        self.select = f"SELECT {column} FROM {table} WHERE {key} = ?"  # noqa: S608
        self.update = f"UPDATE {table} SET {column} = ? WHERE {key} = ?"  # noqa: S608
        self.bodies = f"SELECT {column} FROM {table}{kept}"  # noqa: S608


# The bodies a row still needs (a purge deletes a hold's body, a finished entry's goes with
# the transaction that finished it; the conditions keep a census right all the same).
HOLD_KEPT = " WHERE hold_id IN (SELECT id FROM holds WHERE purged_at IS NULL)"
QUEUE_KEPT = " WHERE queue_id IN (SELECT id FROM queue WHERE done_at IS NULL)"
KINDS = (
    _Kind("hold_bodies", "hold_id", "body", "", HOLD_KEPT),
    _Kind("queue_bodies", "queue_id", "body", "queue:", QUEUE_KEPT),
    _Kind("outbox", "id", "message", "notice:"),
)


class Bodies:
    """Where SqliteStore keeps its sealed bodies."""

    def __init__(self, file: Database, sealer: Sealer) -> None:
        self._file, self._sealer = file, sealer

    async def reseal(self) -> Resealed:
        found = Resealed()
        db = self._file.db
        for kind in KINDS:
            ids = await self._file.run(partial(_ids, db, kind.select_ids))
            for (row_id,) in ids:
                owner = f"{kind.owner}{row_id}"
                _tally(found, owner, await self._run(partial(self._step, kind, owner, row_id)))
        return found

    async def _run(self, step: Callable[[], str]) -> str:
        return await self._file.run(lambda: self._file.write(step))

    def _step(self, kind: _Kind, owner: str, row_id: str) -> str:
        db = self._file.db
        row = db.execute(kind.select, (row_id,)).fetchone()
        if row is None:
            return GONE
        outcome, new = self._resealed(owner, bytes(row[0]))
        if new is not None:
            db.execute(kind.update, (new, row_id))
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
        return await self._file.run(lambda: census_of(self._file.db))


def _ids(db: sqlite3.Connection, sql: str) -> list[tuple[str]]:
    return db.execute(sql).fetchall()


def census_of(db: sqlite3.Connection) -> KeyCensus:
    """The keys of the bodies in ``db`` (the store's file, or a backup's) that rows need."""
    found = KeyCensus()
    for kind in KINDS:
        for (body,) in db.execute(kind.bodies).fetchall():
            found.count(bytes(body))
    return found


def _tally(found: Resealed, owner: str, outcome: str) -> None:
    if outcome == MOVED:
        found.moved += 1
    elif outcome == CURRENT:
        found.current += 1
    elif outcome == UNREADABLE:
        found.unreadable.append(owner)
