"""Re-sealing PgStore's bodies under the current key (``gateway.store.rotation``): hold and
queue bodies and the outbox's notices, each in its own transaction, written back only if the
row still holds the blob that was read (a compare-and-swap): a body purged or replaced
meanwhile by any node stays as that node left it.
"""

from __future__ import annotations

from typing import Any

from gateway.errors import DecryptError
from gateway.store.crypto import Sealer
from gateway.store.postgres.database import Database
from gateway.store.rotation import KeyCensus, Resealed

# (table, id column, blob column, the owner's prefix in the associated data)
PLACES = (
    ("hold_bodies", "hold_id", "body", ""),
    ("queue_bodies", "queue_id", "body", "queue:"),
    ("outbox", "id", "message", "notice:"),
)


class PgBodies:
    def __init__(self, db: Database, sealer: Sealer) -> None:
        self._db, self._sealer = db, sealer

    async def _ids(self, table: str, column: str) -> list[str]:
        async with self._db.transaction() as conn:
            cursor = await conn.execute(f"SELECT {column} FROM {table}")  # noqa: S608
            return [row[0] for row in await cursor.fetchall()]

    async def reseal(self) -> Resealed:
        found = Resealed()
        for table, column, blob, prefix in PLACES:
            for row_id in await self._ids(table, column):
                await self._step(found, (table, column, blob), row_id, prefix + row_id)
        return found

    async def _step(
        self, found: Resealed, where: tuple[str, str, str], row_id: str, owner: str
    ) -> None:
        table, column, blob = where
        async with self._db.transaction() as conn:
            sql = f"SELECT {blob} FROM {table} WHERE {column} = %s"  # noqa: S608
            cursor = await conn.execute(sql, (row_id,))
            row = await cursor.fetchone()
            if row is None:
                return
            old = bytes(row[0])
            if self._sealer.is_current(old):
                found.current += 1
                return
            try:
                new = self._sealer.reseal(owner, old)
            except DecryptError:
                found.unreadable.append(owner)
                return
            cursor = await conn.execute(
                f"UPDATE {table} SET {blob} = %s WHERE {column} = %s AND {blob} = %s",  # noqa: S608
                (new, row_id, old),
            )
            found.moved += cursor.rowcount

    async def census(self) -> KeyCensus:
        found = KeyCensus()
        for table, _column, blob, _prefix in PLACES:
            async with self._db.transaction() as conn:
                cursor = await conn.execute(f"SELECT {blob} FROM {table}")  # noqa: S608
                rows: list[Any] = await cursor.fetchall()
            for (sealed,) in rows:
                found.count(bytes(sealed))
        return found
