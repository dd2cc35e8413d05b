"""Group commit on the embedded store: holds, journal records and queue entries waiting for
the store's thread together go into one transaction, each standing or failing on its own.

The store's thread is held up behind a gate while the writes queue, so that they are known to
wait together (no timing involved), then let go.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from gateway.store import AuditRecord, Hold, NewNotice
from gateway.store.crypto import Sealer
from gateway.store.queued import NewQueued, QueuedRecipient
from gateway.store.sqlite import SqliteStore
from gateway.store.sqlite.database import Database, script
from gateway.store.sqlite.groupcommit import GroupCommit
from store.backends import AUDIT_KEY, SEALING_KEY, new_hold
from support.fakes import FakeClock

T = TypeVar("T")


def count(store: SqliteStore, table: str) -> int:
    sql = f"SELECT count(*) FROM {table}"  # noqa: S608
    return int(store.file.call(lambda: store.connection.execute(sql).fetchone()[0]))


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    opened = SqliteStore(
        tmp_path / "data", Sealer(SEALING_KEY), FakeClock(1_800_000_000.0), audit_key=AUDIT_KEY
    )
    try:
        yield opened
    finally:
        await opened.close()


async def together(commits: GroupCommit, database: Database, calls: list[Awaitable[T]]) -> list[T]:
    """Run ``calls`` while the file's thread is held up, so all of them queue before any runs;
    the results (or exceptions) in order."""
    gate = threading.Event()
    database.submit(gate.wait)
    tasks = [asyncio.ensure_future(call) for call in calls]
    await asyncio.sleep(0)  # one turn of the loop: each call queues at its first step
    assert commits.waiting == len(calls)
    gate.set()
    return list(await asyncio.gather(*tasks, return_exceptions=True))


def consequences(note: str = "held") -> Any:
    def then(hold: Hold) -> tuple[list[AuditRecord], list[NewNotice]]:
        audit = [AuditRecord("held", hold.id, "gateway", {"note": note})]
        notice = NewNotice("held", hold.id, "postmaster@gw.test", (hold.sender,), b"Held\r\n")
        return audit, [notice]

    return then


def unsealable(hold: Hold) -> tuple[list[AuditRecord], list[NewNotice]]:
    """Consequences the chain cannot take (data that is not JSON): the hold's write fails
    inside the transaction, after its row was inserted."""
    return [AuditRecord("held", hold.id, "gateway", {"bad": object()})], []


async def test_fifty_concurrent_holds_all_land_once_in_one_commit_and_the_chain_verifies(
    store: SqliteStore,
) -> None:
    before = store.commits.batches
    news = [new_hold(key=f"k{i}") for i in range(50)]
    results = await together(
        store.commits, store.file, [store.hold(new, consequences()) for new in news]
    )

    assert all(created for _, created in results)
    assert store.commits.batches == before + 1
    holds = [hold for hold, _ in results]
    assert len({hold.id for hold in holds}) == 50
    for hold, new in zip(holds, news, strict=True):
        assert hold.key == new.key
        assert await store.get(hold.id) == hold  # what the caller got is what was stored
        assert await store.message(hold.id) == new.message
    assert await store.verify_audit() == (50, None)
    notices = await store.due_notices(now=2_000_000_000.0, limit=100)
    assert sorted(n.hold_id for n in notices) == sorted(hold.id for hold in holds)
    assert count(store, "hold_bodies") == 50


async def test_a_duplicate_key_in_a_batch_gets_the_existing_hold_and_the_others_are_made(
    store: SqliteStore,
) -> None:
    first, _ = await store.hold(new_hold(key="retried"), consequences())
    news = [new_hold(key=f"k{i}") for i in range(4)]
    news.insert(2, new_hold(key="retried"))
    results = await together(
        store.commits, store.file, [store.hold(new, consequences()) for new in news]
    )

    assert [created for _, created in results] == [True, True, False, True, True]
    assert results[2][0] == first
    assert await store.verify_audit() == (5, None)  # the retry added nothing to the trail
    notices = await store.due_notices(now=2_000_000_000.0, limit=100)
    assert [n.hold_id for n in notices].count(first.id) == 1
    # The retry's body was sealed speculatively and never stored.
    assert count(store, "hold_bodies") == 5


async def test_two_holds_of_one_message_in_the_same_batch_make_one_hold(
    store: SqliteStore,
) -> None:
    results = await together(
        store.commits,
        store.file,
        [store.hold(new_hold(key="twice"), consequences()) for _ in range(2)],
    )

    assert [created for _, created in results] == [True, False]
    assert results[0][0] == results[1][0]
    assert await store.verify_audit() == (1, None)


async def test_a_hold_failing_inside_the_batch_leaves_the_others_committed(
    store: SqliteStore,
) -> None:
    calls = [
        store.hold(new_hold(key=f"k{i}"), unsealable if i == 1 else consequences())
        for i in range(5)
    ]
    results = await together(store.commits, store.file, calls)

    assert isinstance(results[1], TypeError)
    made = [r for i, r in enumerate(results) if i != 1]
    assert all(created for _, created in made)
    for hold, _ in made:
        assert await store.get(hold.id) == hold
    assert await store.verify_audit() == (4, None)
    # Nothing of the failed one stands: its key is free for the MTA's retry.
    _, created = await store.hold(new_hold(key="k1"), consequences())
    assert created
    assert await store.verify_audit() == (5, None)


async def test_concurrent_relay_journal_records_share_a_commit_and_are_all_found(
    store: SqliteStore,
) -> None:
    before = store.commits.batches
    calls = [
        store.record_relayed(
            f"m{i}",
            [f"a{i}@secure.test", f"b{i}@secure.test"],
            [AuditRecord("delivered", "", "gateway", {"n": i})],
        )
        for i in range(30)
    ]
    await together(store.commits, store.file, calls)

    assert store.commits.batches == before + 1
    for i in range(30):
        assert await store.relayed(f"m{i}") == {f"a{i}@secure.test", f"b{i}@secure.test"}
    assert await store.relayed("never") == frozenset()
    assert await store.verify_audit() == (30, None)


async def test_concurrent_queue_entries_share_a_commit_and_a_repeat_gets_the_first(
    store: SqliteStore,
) -> None:
    def queued(key: str) -> NewQueued:
        return NewQueued(
            key=key,
            sender="head@school.test",
            recipients=(QueuedRecipient("officer@direct.test", "direct.test"),),
            mail_options=(),
            message=b"Subject: x\r\n\r\nbody\r\n",
            client="127.0.0.1",
            helo="client.school.test",
            protocol="ESMTP",
            message_id="<q@school.test>",
        )

    first, _ = await store.enqueue(queued("again"))
    calls = [store.enqueue(queued(key)) for key in ("q1", "again", "q2", "q3")]
    results = await together(store.commits, store.file, calls)

    assert [created for _, created in results] == [True, False, True, True]
    assert results[1][0].id == first.id
    for entry, _ in results:
        assert await store.queued_message(entry.id) == b"Subject: x\r\n\r\nbody\r\n"
    assert count(store, "queue_bodies") == 4


# --- the mechanism itself, on a table of its own -------------------------------------------


@pytest.fixture
async def numbers(tmp_path: Path) -> AsyncIterator[tuple[Database, GroupCommit]]:
    database = Database(
        tmp_path / "n.sqlite3", [script("CREATE TABLE n (v INTEGER PRIMARY KEY)")], name="n"
    )
    try:
        yield database, GroupCommit(database)
    finally:
        await database.close()


def rows(database: Database) -> list[int]:
    return [r[0] for r in database.call(lambda: database.db.execute("SELECT v FROM n ORDER BY v"))]


async def test_an_item_that_fails_after_writing_is_undone_alone(
    numbers: tuple[Database, GroupCommit],
) -> None:
    database, commits = numbers

    def insert(value: int, fail: bool = False) -> Any:
        def work() -> int:
            database.db.execute("INSERT INTO n VALUES (?)", (value,))
            if fail:
                raise ValueError("injected")
            return value

        return commits.write(work)

    results = await together(
        commits, database, [insert(1), insert(2, fail=True), insert(3), insert(1), insert(4)]
    )

    assert [results[0], results[2], results[4]] == [1, 3, 4]
    assert isinstance(results[1], ValueError)
    assert isinstance(results[3], sqlite3.IntegrityError)  # its own duplicate, nobody else's
    assert rows(database) == [1, 3, 4]
    assert commits.batches == 1


async def test_when_sqlite_gives_up_the_transaction_the_others_are_written_again(
    numbers: tuple[Database, GroupCommit],
) -> None:
    database, commits = numbers

    def insert(value: int) -> Any:
        def work() -> None:
            database.db.execute("INSERT INTO n VALUES (?)", (value,))

        return commits.write(work)

    def lost() -> None:
        # What SQLite does on some I/O and memory errors: the whole transaction rolled back.
        database.db.execute("ROLLBACK")
        raise sqlite3.OperationalError("disk I/O error")

    results = await together(
        commits, database, [insert(1), insert(2), commits.write(lost), insert(3)]
    )

    assert isinstance(results[2], sqlite3.OperationalError)
    assert [results[0], results[1], results[3]] == [None, None, None]
    assert rows(database) == [1, 2, 3]


async def test_a_prepare_that_fails_keeps_its_item_out_and_reads_run_beside_the_writes(
    numbers: tuple[Database, GroupCommit],
) -> None:
    database, commits = numbers

    def refuse() -> None:
        raise OSError("no space left on device")

    def insert(value: int) -> None:
        database.db.execute("INSERT INTO n VALUES (?)", (value,))

    results = await together(
        commits,
        database,
        [
            commits.write(lambda: insert(1)),
            commits.write(lambda: insert(2), prepare=refuse),
            commits.read(lambda: database.db.execute("SELECT count(*) FROM n").fetchone()[0]),
        ],
    )

    assert isinstance(results[1], OSError)
    assert results[2] == 0  # a read runs before the batch's writes
    assert rows(database) == [1]


async def test_writes_queued_after_the_file_closed_fail_instead_of_waiting(
    numbers: tuple[Database, GroupCommit],
) -> None:
    database, commits = numbers
    await database.close()

    with pytest.raises(RuntimeError):
        await commits.write(lambda: None)
