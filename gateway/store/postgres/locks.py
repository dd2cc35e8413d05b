"""Single-flight work across nodes on PostgreSQL: one domain's MTA-STS policy fetch at a time,
whichever node asks (``gateway.posture.fetchlock.FetchLocks``).

A session-level advisory lock (PostgreSQL docs, §13.3.5 "Advisory Locks") keyed
``(FETCH_LOCKS, hashtext(name))``, taken with ``pg_try_advisory_lock`` and polled, so that
waiting blocks neither a thread nor the event loop and gives up when the caller's patience runs
out. The lock lives as long as the session: it is held on one pool connection for the whole
block and unlocked after it. A node that dies mid-fetch loses its session, and the server drops
its locks with it. Two names whose hashes collide only share a lock: a fetch waits for an
unrelated one, never runs twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from psycopg import AsyncConnection

from gateway.posture.fetchlock import LockTimeout
from gateway.store.postgres.database import FETCH_LOCKS, Database

POLL = 0.05  # seconds between tries: each one is a round trip to the database


class AdvisoryLocks:
    """Implements ``FetchLocks`` for every node on one database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    @asynccontextmanager
    async def locked(self, name: str, patience: float) -> AsyncIterator[None]:
        async with self._db.connection() as conn:
            try:
                await _acquire(conn, name, patience)
            except LockTimeout:
                raise
            except BaseException:
                await _forget_session(conn)  # whether the try took the lock is unknown
                raise
            try:
                yield
            finally:
                await _release(conn, name)


async def _acquire(conn: AsyncConnection[Any], name: str, patience: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience
    while True:
        cursor = await conn.execute(
            "SELECT pg_try_advisory_lock(%s, hashtext(%s))", (FETCH_LOCKS, name)
        )
        row = await cursor.fetchone()
        if row is not None and row[0]:
            return
        if loop.time() >= deadline:
            raise LockTimeout(name)
        await asyncio.sleep(POLL)


async def _release(conn: AsyncConnection[Any], name: str) -> None:
    try:
        await conn.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (FETCH_LOCKS, name))
    except BaseException:
        await _forget_session(conn)
        raise


async def _forget_session(conn: AsyncConnection[Any]) -> None:
    """A session that may still hold the lock must not go back to the pool, where it would
    keep the lock for good: close it, the server drops its locks, the pool replaces it."""
    await conn.close()
