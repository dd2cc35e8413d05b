"""One PostgreSQL database, shared by every node: a pool of connections per process, each
statement bounded by a timeout, the schema versioned and checked.

Coroutines take a connection with ``async with db.transaction() as conn`` (the hold store's
reads, the policy cache), ``db.write()`` for a transaction sent as one pipeline (the hold
store's writes), or ``db.statement()`` for a block of one statement (the hold store's reads of
one row);
synchronous callers already off the event loop (the accounts: a worker thread of the web UI,
the command line) use ``SyncDatabase`` the same way. Either way the block is one transaction,
committed when it ends and rolled back when it raises; whatever the driver or the pool raises
because the database cannot be reached or did not answer in time becomes ``StoreUnavailable``
(temporary: the SMTP client gets 451 and retries), and the pool replaces broken connections by
itself, so the node recovers when the database comes back.

The locking is the database's: row locks (``FOR UPDATE SKIP LOCKED``) for claims, and advisory
locks in the gateway's own lock classes below for what must happen once across nodes (a
migration, an audit append, one domain's MTA-STS fetch).
"""

from __future__ import annotations

import select
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager, suppress
from typing import Any

import psycopg
import psycopg_pool
from psycopg import AsyncConnection, Connection
from psycopg.conninfo import conninfo_to_dict
from psycopg.pq import TransactionStatus

from gateway.errors import SchemaMismatch, StoreUnavailable

# Advisory lock classes (the first key of pg_advisory_xact_lock(int, int)), so the gateway's
# locks never collide with another application's in the same database.
GATEWAY_LOCKS = 0x5347  # "SG": MIGRATE_LOCK, AUDIT_LOCK
FETCH_LOCKS = 0x5348  # one lock a domain: hashtext(domain) is the second key
MIGRATE_LOCK = 1
AUDIT_LOCK = 2
# While the database is down, how often one transaction tries it again (the pool also
# reconnects in the background).
PROBE_EVERY = 1.0
# The pool retries a lost connection with a doubling delay (1, 2, 4 s...) for this long, then
# gives up until the next request asks again: so a database back after a long outage is used
# within seconds, not after a delay grown to minutes.
RECONNECT_WITHIN = 10.0

# A connection in a transaction left open (by an error).
_OPEN = (TransactionStatus.INTRANS, TransactionStatus.INERROR)

# A migration is one SQL script, run in one transaction with the migration lock held.
Migration = str

_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS gateway_schema (
    version     integer PRIMARY KEY,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""

# Errors that say the database is not there or did not answer: temporary by nature. A
# programming error (a bad statement, a violated constraint) is not among them.
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    psycopg.OperationalError,  # connection refused or lost, server shutting down
    psycopg.errors.QueryCanceled,  # statement_timeout
    psycopg.errors.AdminShutdown,
    psycopg.errors.CannotConnectNow,
    psycopg_pool.PoolTimeout,
    psycopg_pool.PoolClosed,
)


def describe(dsn: str) -> str:
    """The connection string without its password, for logs and messages."""
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "(a connection string that does not parse)"
    shown = {k: v for k, v in parts.items() if k in {"host", "port", "dbname", "user"}}
    return " ".join(f"{key}={value}" for key, value in sorted(shown.items())) or "(defaults)"


def spoke(conn: AsyncConnection[Any] | Connection[Any]) -> bool:
    """Whether the server sent anything to a connection idle in the pool, where it was asked
    nothing: that is the FATAL it sends before it ends the session (a shutdown or a restart:
    PostgreSQL docs, "Frontend/Backend Protocol", "Termination"), or the end of the stream.
    Polling the socket costs no round trip, where a test query costs one on every use; a link
    lost without a word fails its next transaction instead, with a 451, and the pool replaces
    the connection."""
    if conn.closed:
        return True
    poller = select.poll()  # not select(): a descriptor may be above FD_SETSIZE
    poller.register(conn.fileno(), select.POLLIN)
    return bool(poller.poll(0))


async def _check(conn: AsyncConnection[Any]) -> None:
    if spoke(conn):
        await psycopg_pool.AsyncConnectionPool.check_connection(conn)


def _check_sync(conn: Connection[Any]) -> None:
    if spoke(conn):
        psycopg_pool.ConnectionPool.check_connection(conn)


def connection_options(
    statement_timeout: float, connect_timeout: float, name: str
) -> dict[str, Any]:
    return {
        # Every statement of the session is bounded (milliseconds); a stuck database then
        # fails the one SMTP transaction waiting on it with a 451 instead of holding it.
        "options": f"-c statement_timeout={max(1, int(statement_timeout * 1000))}",
        "connect_timeout": max(1, round(connect_timeout)),
        "application_name": f"gateway-{name}",
    }


def pool_options(
    pool_size: int, statement_timeout: float, connect_timeout: float, name: str
) -> dict[str, Any]:
    """What both pools share. Each also checks a connection before use (``spoke``, then its
    class's ``check_connection``): one the server dropped (a restart) is replaced instead of
    failing the transaction that drew it."""
    return {
        "min_size": 1,
        "max_size": max(1, pool_size),
        "kwargs": connection_options(statement_timeout, connect_timeout, name),
        "open": False,
        "name": f"gateway-{name}",
        # How long a caller waits for a free connection: a burst larger than the pool
        # queues for as long as one statement may take, rather than failing at once.
        "timeout": connect_timeout + statement_timeout,
        "reconnect_timeout": RECONNECT_WITHIN,
    }


class Database:
    """The asyncio side: an ``AsyncConnectionPool``, opened by ``open``."""

    def __init__(
        self,
        dsn: str,
        *,
        pool_size: int = 8,
        statement_timeout: float = 10.0,
        connect_timeout: float = 5.0,
        name: str = "store",
    ) -> None:
        self.dsn = dsn
        self.name = name
        self._wait = connect_timeout + statement_timeout
        self._down = self._probing = False
        self._next_probe = 0.0
        self._pool = psycopg_pool.AsyncConnectionPool(
            dsn,
            check=_check,
            **pool_options(pool_size, statement_timeout, connect_timeout, name),
        )

    async def open(self, wait: bool = True) -> None:
        """Open the pool; with ``wait``, until one connection works (StoreUnavailable if none
        does within the connect timeout)."""
        try:
            await self._pool.open(wait=wait, timeout=self._wait)
        except _UNAVAILABLE as exc:
            await self._pool.close()
            raise StoreUnavailable(f"PostgreSQL at {describe(self.dsn)}: {exc}") from exc

    async def close(self) -> None:
        await self._pool.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection[Any]]:
        async with self._session() as conn, conn.transaction():
            yield conn

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection[Any]]:
        """A transaction sent as one pipeline (libpq docs §34.5 "Pipeline Mode": the server
        runs the statements in the order sent, and the client reads their results when it
        needs them): the BEGIN goes with the first statement, and the statements whose results
        the block does not read go with the next one it does, or with the COMMIT. A write of
        rows and audit entries costs two round trips (``trail.append``). In the block, a
        cursor's ``rowcount`` is known only once its rows are fetched: a statement whose
        outcome matters returns a row."""
        async with self._session() as conn:
            # BEGIN and COMMIT are statements of the pipeline: psycopg's own (``transaction``,
            # or the BEGIN it sends before a first statement) each wait for a Sync.
            await conn.set_autocommit(True)
            try:
                async with conn.pipeline():
                    await conn.execute("BEGIN")
                    yield conn
                    await conn.execute("COMMIT")
            except BaseException:
                # Not committed: the block raised before the COMMIT, or a statement failed and
                # the server skipped the rest (the transaction is then aborted, still open).
                # The pool discards a connection it cannot roll back; the first error is the
                # one to report.
                if conn.info.transaction_status in _OPEN:
                    with suppress(psycopg.Error):
                        await conn.rollback()
                raise
            finally:
                if conn.info.transaction_status == TransactionStatus.IDLE:
                    await conn.set_autocommit(False)

    @asynccontextmanager
    async def statement(self) -> AsyncIterator[AsyncConnection[Any]]:
        """For a block of one statement: run in autocommit, it is a transaction of its own
        (PostgreSQL docs §3.4 "Transactions": a statement outside BEGIN is one), without a
        BEGIN before it and a COMMIT after it, each a round trip."""
        async with self._session() as conn:
            await conn.set_autocommit(True)
            try:
                yield conn
            finally:
                if conn.info.transaction_status == TransactionStatus.IDLE:
                    await conn.set_autocommit(False)

    @asynccontextmanager
    async def _session(self) -> AsyncIterator[AsyncConnection[Any]]:
        probing = self._admit()
        try:
            async with self._pool.connection() as conn:
                yield conn
        except _UNAVAILABLE as exc:
            if not isinstance(exc, psycopg.errors.QueryCanceled):
                # Down (a statement that timed out says nothing of the server): the next
                # try is one probe, PROBE_EVERY from now.
                self._down, self._next_probe = True, time.monotonic() + PROBE_EVERY
            raise StoreUnavailable(f"PostgreSQL at {describe(self.dsn)}: {exc}") from exc
        else:
            self._down = False
        finally:
            if probing:
                self._probing = False

    def _admit(self) -> bool:
        """While the database is known to be down, one transaction at a time (at most one
        each PROBE_EVERY seconds) tries it; the others fail at once instead of each waiting
        out the pool's timeout, so unflagged mail keeps flowing and flagged mail gets its 451
        promptly. True when this transaction is the probe."""
        if not self._down:
            return False
        now = time.monotonic()
        if self._probing or now < self._next_probe:
            raise StoreUnavailable(
                f"PostgreSQL at {describe(self.dsn)} is unreachable; reconnecting"
            )
        self._probing = True
        return True

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection[Any]]:
        """One pool connection for the whole block, each statement its own transaction
        (autocommit): for a session-level advisory lock held across statements."""
        try:
            async with self._pool.connection() as conn:
                await conn.set_autocommit(True)
                try:
                    yield conn
                finally:
                    if not conn.closed:
                        await conn.set_autocommit(False)
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(f"PostgreSQL at {describe(self.dsn)}: {exc}") from exc


class SyncDatabase:
    """The synchronous side, for callers off the event loop: a ``ConnectionPool``."""

    def __init__(
        self,
        dsn: str,
        *,
        pool_size: int = 4,
        statement_timeout: float = 10.0,
        connect_timeout: float = 5.0,
        name: str = "accounts",
    ) -> None:
        self.dsn = dsn
        self._pool = psycopg_pool.ConnectionPool(
            dsn,
            check=_check_sync,
            **pool_options(pool_size, statement_timeout, connect_timeout, name),
        )
        self._pool.open(wait=False)

    def close(self) -> None:
        self._pool.close()

    @contextmanager
    def transaction(self) -> Iterator[Connection[Any]]:
        try:
            with self._pool.connection() as conn, conn.transaction():
                yield conn
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(f"PostgreSQL at {describe(self.dsn)}: {exc}") from exc


async def schema_version(conn: AsyncConnection[Any]) -> int:
    """The highest migration applied (0: an empty database)."""
    cursor = await conn.execute("SELECT to_regclass('gateway_schema') IS NOT NULL")
    row = await cursor.fetchone()
    if not row or not row[0]:
        return 0
    cursor = await conn.execute("SELECT coalesce(max(version), 0) FROM gateway_schema")
    row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def migrate(db: Database, migrations: Sequence[Migration]) -> tuple[int, int]:
    """Apply the steps the database lacks, each in its own transaction under the migration
    lock (two nodes migrating at once: the second finds the work done). (before, after)."""
    async with db.transaction() as conn:
        await conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (GATEWAY_LOCKS, MIGRATE_LOCK))
        await conn.execute(_VERSION_TABLE)
        before = await schema_version(conn)
    if before > len(migrations):
        raise SchemaMismatch(before, len(migrations))
    for target, step in enumerate(migrations, start=1):
        if target <= before:
            continue
        async with db.transaction() as conn:
            await conn.execute(
                "SELECT pg_advisory_xact_lock(%s, %s)", (GATEWAY_LOCKS, MIGRATE_LOCK)
            )
            if await schema_version(conn) < target:
                await conn.execute(step.encode())
                await conn.execute("INSERT INTO gateway_schema (version) VALUES (%s)", (target,))
    return before, len(migrations)


async def check_schema(db: Database, known: int) -> None:
    """Refuse a schema older or newer than this release's (SchemaMismatch says what to run)."""
    async with db.transaction() as conn:
        found = await schema_version(conn)
    if found != known:
        raise SchemaMismatch(found, known)
