"""The shared backend's database layer against the rig's PostgreSQL: migrations, the schema
check a node makes at start, and the errors that say the database is not there."""

from __future__ import annotations

import asyncio
import contextlib

import psycopg
import pytest

from gateway.errors import SchemaMismatch, StoreUnavailable
from gateway.store.postgres import SCHEMA_VERSION, Database, database
from gateway.store.postgres.database import check_schema, describe, migrate
from gateway.store.postgres.tables import MIGRATIONS
from rig.ports import free_port
from rig.postgres import Postgres


async def opened(dsn: str, **options: float) -> Database:
    db = Database(dsn, **options)  # type: ignore[arg-type]
    await db.open()
    return db


async def test_migrate_applies_each_step_once_even_from_two_nodes_at_once(pg_dsn: str) -> None:
    first, second = await opened(pg_dsn), await opened(pg_dsn)
    try:
        results = await asyncio.gather(migrate(first, MIGRATIONS), migrate(second, MIGRATIONS))
        assert [after for _, after in results] == [SCHEMA_VERSION, SCHEMA_VERSION]
        assert min(before for before, _ in results) == 0
        assert await migrate(first, MIGRATIONS) == (SCHEMA_VERSION, SCHEMA_VERSION)
        await check_schema(first, SCHEMA_VERSION)
        async with first.transaction() as conn:
            cursor = await conn.execute("SELECT version FROM gateway_schema ORDER BY 1")
            assert [row[0] for row in await cursor.fetchall()] == list(range(1, SCHEMA_VERSION + 1))
    finally:
        await first.close()
        await second.close()


async def test_a_node_refuses_an_empty_or_newer_schema_and_says_what_to_run(pg_dsn: str) -> None:
    db = await opened(pg_dsn)
    try:
        with pytest.raises(SchemaMismatch, match="gateway store migrate"):
            await check_schema(db, SCHEMA_VERSION)
        await migrate(db, MIGRATIONS)
        async with db.transaction() as conn:
            await conn.execute(
                "INSERT INTO gateway_schema (version) VALUES (%s)", (SCHEMA_VERSION + 1,)
            )
        with pytest.raises(SchemaMismatch, match="upgrade this node"):
            await check_schema(db, SCHEMA_VERSION)
        with pytest.raises(SchemaMismatch):
            await migrate(db, MIGRATIONS)  # never "downgrade" by running old steps
    finally:
        await db.close()


async def test_a_database_that_is_not_there_is_unavailable_not_a_crash() -> None:
    dsn = f"postgresql://gateway:secret@127.0.0.1:{free_port()}/gateway"
    with pytest.raises(StoreUnavailable) as raised:
        await opened(dsn, connect_timeout=1.0, statement_timeout=1.0)
    assert "secret" not in str(raised.value)
    assert raised.value.temporary


async def test_a_statement_over_the_timeout_is_cancelled(pg_dsn: str) -> None:
    db = await opened(pg_dsn, statement_timeout=0.2)
    try:
        with pytest.raises(StoreUnavailable, match="statement timeout"):
            async with db.transaction() as conn:
                await conn.execute("SELECT pg_sleep(5)")
        async with db.transaction() as conn:  # the pool is still usable
            cursor = await conn.execute("SELECT 1")
            assert await cursor.fetchone() == (1,)
    finally:
        await db.close()


async def test_while_the_database_is_down_one_probe_tries_it_and_the_rest_fail_at_once(
    pg_dsn: str, postgres_server: Postgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(database, "PROBE_EVERY", 0.0)
    db = await opened(pg_dsn, connect_timeout=1.0, statement_timeout=1.0)

    async def select_one() -> None:
        async with db.transaction() as conn:
            await conn.execute("SELECT 1")

    try:
        postgres_server.stop()
        with pytest.raises(StoreUnavailable):
            await select_one()
        asked = db._pool.get_stats().get("requests_num", 0)
        probe, other = await asyncio.gather(select_one(), select_one(), return_exceptions=True)
        assert isinstance(probe, StoreUnavailable)
        assert "reconnecting" not in str(probe)
        assert isinstance(other, StoreUnavailable)
        assert "reconnecting" in str(other)
        assert db._pool.get_stats().get("requests_num", 0) == asked + 1  # only the probe asked
        postgres_server.start()
        for _ in range(15):  # each probe waits for the pool's reconnect (2 s at most)
            with contextlib.suppress(StoreUnavailable):
                await select_one()
                break
        else:
            pytest.fail("the pool did not reconnect after the server came back")
        await asyncio.gather(select_one(), select_one())  # and everyone is let in again
    finally:
        if not postgres_server.running:
            postgres_server.start()
        await db.close()


async def test_a_write_that_fails_part_way_commits_none_of_it(pg_dsn: str) -> None:
    db = await opened(pg_dsn)

    async def rows() -> list[object]:
        async with db.transaction() as conn:
            return [
                r[0] for r in await (await conn.execute("SELECT n FROM t ORDER BY n")).fetchall()
            ]

    try:
        async with db.write() as conn:
            await conn.execute("CREATE TABLE t (n integer PRIMARY KEY)")
        with pytest.raises(psycopg.errors.UniqueViolation):
            await write_twice(db)
        with pytest.raises(LookupError):
            await write_then_raise(db)
        assert await rows() == []
        async with db.write() as conn:  # the connection went back to the pool clean
            await conn.execute("INSERT INTO t VALUES (3)")
        assert await rows() == [3]
    finally:
        await db.close()


async def write_twice(db: Database) -> None:
    """A statement the server refuses, its result never read by the block: the COMMIT sent
    after it in the same pipeline is skipped, and the error is the block's."""
    async with db.write() as conn:
        await conn.execute("INSERT INTO t VALUES (1)")
        await conn.execute("INSERT INTO t VALUES (1)")


async def write_then_raise(db: Database) -> None:
    """A block that raises after its statements were sent."""
    async with db.write() as conn:
        await conn.execute("INSERT INTO t VALUES (2)")
        raise LookupError("the caller changed its mind")


@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_a_restart_between_transactions_fails_none_of_the_next_ones(
    pg_dsn: str, postgres_server: Postgres, mode: str
) -> None:
    db = await opened(pg_dsn, pool_size=3, connect_timeout=2.0, statement_timeout=2.0)
    together = asyncio.Barrier(3)

    async def select_one(wait: bool) -> object:
        async with db.transaction() as conn:
            if wait:  # each holds its connection until all three have one: the pool has 3
                await asyncio.wait_for(together.wait(), 10)
            found = await (await conn.execute("SELECT 1")).fetchone()
        return found[0] if found else None

    try:
        assert await asyncio.gather(*(select_one(True) for _ in range(3))) == [1, 1, 1]
        postgres_server.restart(mode)
        # The three idle connections died with the server: the pool hands out none of them.
        assert await asyncio.gather(*(select_one(False) for _ in range(3))) == [1, 1, 1]
    finally:
        if not postgres_server.running:
            postgres_server.start()
        await db.close()


def test_the_description_of_a_dsn_leaves_the_password_out() -> None:
    shown = describe("postgresql://gateway:hunter2@db.example:5433/gw")
    assert "hunter2" not in shown
    assert shown == "dbname=gw host=db.example port=5433 user=gateway"
    assert "hunter2" not in describe("host=db.example password=hunter2 dbname=gw")
