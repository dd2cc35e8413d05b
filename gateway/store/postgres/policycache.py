"""The MTA-STS policy cache in the shared database, so that what one node learned every node
uses (and a restart keeps it). The rules for using it are in ``gateway.core.stscache``; the
embedded twin is ``gateway.store.policycache``.

The raw policy text is stored, not a parsed form: on load it is parsed again, so a row written
by an older release can never smuggle in a policy today's parser would refuse; such a row is
forgotten.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import AsyncConnection

from gateway.core.model import PolicyStatus
from gateway.core.mtasts import StsError, parse_policy
from gateway.core.stscache import CachedPolicy, FetchFailure
from gateway.store.postgres.database import Database, check_schema
from gateway.store.postgres.tables import SCHEMA_VERSION, text_value


class PgPolicyCache:
    """Implements ``gateway.store.PolicyCache``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def open(self) -> None:
        """Open the pool and check the schema (SchemaMismatch says what to run)."""
        await self._db.open()
        try:
            await check_schema(self._db, SCHEMA_VERSION)
        except BaseException:
            await self._db.close()
            raise

    async def close(self) -> None:
        await self._db.close()

    async def policy(self, domain: str) -> CachedPolicy | None:
        async with self._db.transaction() as conn:
            return await _policy(conn, domain)

    async def failure(self, domain: str) -> FetchFailure | None:
        async with self._db.transaction() as conn:
            return await _failure(conn, domain)

    async def entry(self, domain: str) -> tuple[CachedPolicy | None, FetchFailure | None]:
        # One transaction for both: a domain check reads the two together.
        async with self._db.transaction() as conn:
            return await _policy(conn, domain), await _failure(conn, domain)

    async def store_policy(self, cached: CachedPolicy) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                "INSERT INTO sts_policy (domain, id, policy, fetched_at, expires_at)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (domain) DO UPDATE SET"
                " id = excluded.id, policy = excluded.policy,"
                " fetched_at = excluded.fetched_at, expires_at = excluded.expires_at",
                (
                    cached.domain,
                    text_value(cached.id),
                    text_value(cached.text),
                    cached.fetched_at,
                    cached.expires_at,
                ),
            )
            await conn.execute("DELETE FROM sts_failure WHERE domain = %s", (cached.domain,))

    async def store_failure(self, domain: str, failure: FetchFailure) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                "INSERT INTO sts_failure (domain, id, at, status, error, temporary)"
                " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (domain) DO UPDATE SET"
                " id = excluded.id, at = excluded.at, status = excluded.status,"
                " error = excluded.error, temporary = excluded.temporary",
                (
                    domain,
                    text_value(failure.id),
                    failure.at,
                    failure.status.value,
                    text_value(failure.error),
                    failure.temporary,
                ),
            )

    async def forget(self, domain: str | None = None) -> int:
        """Purge one domain's cached policy and failure, or all of them. Returns how many."""
        async with self._db.transaction() as conn:
            return await _forget(conn, domain)

    async def domains(self) -> Sequence[str]:
        async with self._db.transaction() as conn:
            cursor = await conn.execute("SELECT domain FROM sts_policy ORDER BY 1")
            return [str(row[0]) for row in await cursor.fetchall()]


async def _forget(conn: AsyncConnection[Any], domain: str | None) -> int:
    if domain is None:
        cursor = await conn.execute("DELETE FROM sts_policy")
        await conn.execute("DELETE FROM sts_failure")
    else:
        cursor = await conn.execute("DELETE FROM sts_policy WHERE domain = %s", (domain,))
        await conn.execute("DELETE FROM sts_failure WHERE domain = %s", (domain,))
    return cursor.rowcount


async def _policy(conn: AsyncConnection[Any], domain: str) -> CachedPolicy | None:
    cursor = await conn.execute(
        "SELECT id, policy, fetched_at, expires_at FROM sts_policy WHERE domain = %s",
        (domain,),
    )
    row = await cursor.fetchone()
    if row is None:
        return None
    record_id, text, fetched_at, expires_at = row
    try:
        policy = parse_policy(text)
    except StsError:
        await _forget(conn, domain)
        return None
    return CachedPolicy(domain, record_id, policy, text, fetched_at, expires_at)


async def _failure(conn: AsyncConnection[Any], domain: str) -> FetchFailure | None:
    cursor = await conn.execute(
        "SELECT id, at, status, error, temporary FROM sts_failure WHERE domain = %s",
        (domain,),
    )
    row = await cursor.fetchone()
    if row is None:
        return None
    record_id, at, status, error, temporary = row
    return FetchFailure(record_id, at, PolicyStatus(status), error, bool(temporary))
