"""One SQLite file, used one way: one connection, on one dedicated thread, off the event loop.

Every SQLite file of the gateway (the hold store, the policy cache, the accounts) opens through
``Database``: the file is created mode 0600 and its folder 0700 (they hold hashes, names and
decisions), the schema is brought up to date once, at open, by numbered migrations recorded
in ``PRAGMA user_version``, and every statement runs on the file's own thread. Coroutines await
``run``; synchronous callers already off the loop (the command line, a worker thread of the web
UI) use ``call``.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from gateway.store.safeio import PRIVATE_FILE, create_private, tighten

T = TypeVar("T")

# A migration takes the schema from version N to N + 1 inside one write transaction.
Migration = Callable[[sqlite3.Connection], None]


def script(sql: str) -> Migration:
    """A migration of plain statements (no semicolons inside them)."""

    def apply(db: sqlite3.Connection) -> None:
        for statement in sql.split(";"):
            if statement.strip():
                db.execute(statement)

    return apply


class Database:
    def __init__(
        self,
        path: Path,
        migrations: Sequence[Migration],
        *,
        synchronous: str = "FULL",
        timeout: float = 10.0,
        name: str = "store",
    ) -> None:
        create_private(path)
        # SQLite gives its side files the database's mode; ones an older release left wider
        # are narrowed here (they hold recent writes in clear).
        for side in ("-wal", "-shm", "-journal"):
            tighten(path.with_name(path.name + side), PRIVATE_FILE)
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._thread: threading.Thread | None = None
        self._closed = False
        self.db = self.call(lambda: self._open(path, timeout, synchronous))
        self.call(lambda: migrate(self.db, migrations))

    def _open(self, path: Path, timeout: float, synchronous: str) -> sqlite3.Connection:
        self._thread = threading.current_thread()
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=timeout)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={synchronous}")
        # Python's lower case, not SQLite's ASCII-only one: senders may be internationalised.
        db.create_function("py_lower", 1, _lower, deterministic=True)
        return db

    async def run(self, work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, work)

    def submit(self, work: Callable[[], object]) -> None:
        """Queue ``work`` on the file's thread without waiting for it (``groupcommit``);
        RuntimeError once the file is closed."""
        self._executor.submit(work)

    def call(self, work: Callable[[], T]) -> T:
        """Run ``work`` on the file's thread and wait for it (for callers off the loop)."""
        if threading.current_thread() is self._thread:
            return work()
        return self._executor.submit(work).result()

    def write(self, work: Callable[[], T]) -> T:
        """Run ``work`` in one write transaction (BEGIN IMMEDIATE: writers queue, also across
        processes). Call it on the file's thread."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            result = work()
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")
        return result

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self.run(self.db.close)
            self._executor.shutdown(wait=True)

    def close_now(self) -> None:
        if not self._closed:
            self._closed = True
            self.call(self.db.close)
            self._executor.shutdown(wait=True)


def migrate(db: sqlite3.Connection, migrations: Sequence[Migration]) -> None:
    """Bring the schema to ``len(migrations)``: each step in its own transaction, skipped when
    another process (a second worker starting at the same time) got there first."""
    for target, step in enumerate(migrations, start=1):
        db.execute("BEGIN IMMEDIATE")
        try:
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            if version < target:
                step(db)
                db.execute(f"PRAGMA user_version = {target}")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    if version > len(migrations):
        raise sqlite3.DatabaseError(
            f"{version} is a newer schema than this release knows ({len(migrations)})"
        )


def _lower(text: str | None) -> str | None:
    return text.lower() if text is not None else None
