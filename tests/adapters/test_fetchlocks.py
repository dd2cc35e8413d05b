"""The fetch locks that keep one domain's MTA-STS policy fetch single-flight: flock files for
the worker processes of one host, advisory locks in PostgreSQL for several nodes. Each lock
object below stands for another process or node (on PostgreSQL a pool of its own)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from gateway.posture.fetchlock import FetchLocks, FileLocks, LockTimeout
from gateway.store.postgres.database import Database
from gateway.store.postgres.locks import AdvisoryLocks

Opener = Callable[[], Awaitable[FetchLocks]]


@pytest.fixture
async def another(either_dsn: str, tmp_path: Path) -> AsyncIterator[Opener]:
    pools: list[Database] = []

    async def open_locks() -> FetchLocks:
        if not either_dsn:
            return FileLocks(tmp_path)
        db = Database(either_dsn, pool_size=2, name="fetch-locks")
        await db.open()
        pools.append(db)
        return AdvisoryLocks(db)

    try:
        yield open_locks
    finally:
        for db in pools:
            await db.close()


async def test_a_held_lock_makes_others_wait_until_their_patience_runs_out(
    another: Opener,
) -> None:
    first, second = await another(), await another()
    async with first.locked("good.test", 1.0):
        with pytest.raises(LockTimeout):
            async with second.locked("good.test", 0.2):
                pytest.fail("two holders of one lock")
        async with second.locked("other.test", 0.0):
            pass  # another domain's lock is free
    async with second.locked("good.test", 0.0):
        pass  # released when the holder's block ended


async def test_a_waiter_gets_the_lock_as_soon_as_the_holder_lets_go(another: Opener) -> None:
    first, second = await another(), await another()
    holding, waiting = asyncio.Event(), asyncio.Event()
    order: list[str] = []

    async def hold() -> None:
        async with first.locked("good.test", 1.0):
            holding.set()
            await waiting.wait()
            order.append("first done")

    async def wait() -> None:
        await holding.wait()
        waiting.set()
        async with second.locked("good.test", 30.0):
            order.append("second in")

    await asyncio.gather(hold(), wait())
    assert order == ["first done", "second in"]


async def test_a_holder_that_fails_still_lets_go(another: Opener) -> None:
    first, second = await another(), await another()
    with pytest.raises(RuntimeError):
        async with first.locked("good.test", 1.0):
            raise RuntimeError("the fetch broke")
    async with second.locked("good.test", 0.0):
        pass


async def test_a_waiter_given_up_on_leaves_no_lock_behind(another: Opener) -> None:
    first, second = await another(), await another()
    async with first.locked("good.test", 1.0):
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3), second.locked("good.test", 30.0):
                pytest.fail("two holders of one lock")
    async with first.locked("good.test", 0.0):
        pass
    async with second.locked("good.test", 0.0):
        pass
