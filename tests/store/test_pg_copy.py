"""`gateway store copy`'s engine against the rig's PostgreSQL: a single-node install (written by
the embedded backend itself) arrives whole, its sealed bodies open under the same key, its
audit chain verifies, and a copy stopped halfway finishes on the next run without a duplicate."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.store import Status
from gateway.store.crypto import Sealer
from gateway.store.postgres import Database, PgStore, SyncDatabase
from gateway.store.postgres.copy import CopyRefused, copy_install
from gateway.store.postgres.database import migrate
from gateway.store.postgres.tables import MIGRATIONS
from store.earlier import as_earlier_release
from store.pginstall import AUDIT_KEY, HOLDS, STORE_KEY, Made, body, make_install

EXPECTED = {  # rows each table of the install has
    "holds": HOLDS,
    "relay_journal": HOLDS,
    "audit": 2 * HOLDS + 2,  # held and queued per message, one purge, one sent by link
    "outbox": HOLDS,
    "probe_results": 1,
    "queue": HOLDS,
    "sts_policy": 1,
    "sts_failure": 1,
    "users": 2,
    "sign_in_failures": 1,
    "sessions": 1,
    "secure_links": 1,
    "link_codes": 1,
}


@pytest.fixture
async def target(pg_dsn: str) -> AsyncIterator[SyncDatabase]:
    db = Database(pg_dsn)
    await db.open()
    try:
        await migrate(db, MIGRATIONS)
    finally:
        await db.close()
    sync = SyncDatabase(pg_dsn)
    try:
        yield sync
    finally:
        sync.close()


@pytest.fixture
async def made(tmp_path: Path) -> Made:
    return await make_install(tmp_path / "install", linked=True)


def rows(db: SyncDatabase, sql: str, *values: object) -> list[tuple[object, ...]]:
    with db.transaction() as conn:
        return list(conn.execute(sql.encode(), values).fetchall())


def counts(db: SyncDatabase) -> dict[str, int]:
    return {
        table: int(rows(db, f"SELECT count(*) FROM {table}")[0][0])  # noqa: S608
        for table in EXPECTED
    }


async def test_every_table_arrives_and_the_sealed_bodies_open_under_the_same_key(
    made: Made, target: SyncDatabase, pg_dsn: str
) -> None:
    report = copy_install(made.install, target, AUDIT_KEY)
    assert report.complete
    assert report.audit_problem is None
    assert {name: c.source for name, c in report.tables.items()} == EXPECTED
    assert {name: c.copied for name, c in report.tables.items()} == EXPECTED
    assert counts(target) == EXPECTED
    sealer = Sealer(STORE_KEY)
    bodies = dict(rows(target, "SELECT hold_id, body FROM hold_bodies"))
    purged = made.hold_ids[0]
    assert purged not in bodies
    assert report.bodies_missing == []
    for n, hold_id in enumerate(made.hold_ids[1:], start=1):
        assert sealer.open(hold_id, bytes(bodies[hold_id])) == body(n)
    queued = dict(rows(target, "SELECT queue_id, body FROM queue_bodies"))
    for n, queue_id in enumerate(made.queue_ids):
        assert sealer.open(f"queue:{queue_id}", bytes(queued[queue_id])) == body(n)
    [(subject, recipients)] = rows(
        target, "SELECT subject, recipients FROM holds WHERE id = %s", made.hold_ids[1]
    )
    assert subject == "hold 1 \ufffd with a NUL"  # PostgreSQL text cannot keep U+0000
    assert recipients[0]["address"] == "a1@partner.test"
    assert rows(target, "SELECT name, disabled FROM users ORDER BY name") == [
        ("alice", False),
        ("bob", True),
    ]
    assert rows(target, "SELECT user_name FROM sessions") == [("alice",)]
    assert rows(target, "SELECT temporary FROM sts_failure") == [(True,)]
    store = PgStore(Database(pg_dsn), sealer, AUDIT_KEY)
    await store.open()
    try:  # the nodes serve what was copied
        hold = await store.get(made.hold_ids[2])
        assert hold is not None
        assert hold.recipients[0].address == "a2@partner.test"
        assert await store.message(made.hold_ids[2]) == body(2)
        assert await store.queued_message(made.queue_ids[3]) == body(3)
        assert await store.verify_audit() == (EXPECTED["audit"], None)
        assert await store.relayed("copy:4") == frozenset({"b4@secure.test"})
        assert made.link is not None
        link = await store.link_by_token(made.link.token_digest)
        assert link is not None
        assert (link.id, link.hold_id, link.recipient) == (
            made.link.id,
            made.hold_ids[-1],
            "a4@partner.test",
        )
        assert (link.code.sent, link.code.digest, link.created_by) == (1, "c" * 64, "alice")
        assert await store.codes_sent_to("a4@partner.test", 0.0) == 1
        linked = await store.get(made.hold_ids[-1])
        assert linked is not None
        assert linked.status is Status.LINKED
    finally:
        await store.close()


async def test_a_copy_stopped_halfway_finishes_on_the_next_run_without_duplicates(
    made: Made, target: SyncDatabase
) -> None:
    class Stopped(Exception):
        pass

    def stop_in_the_audit_trail(table: str, count: int) -> None:
        if table == "audit":
            raise Stopped

    with pytest.raises(Stopped):
        copy_install(made.install, target, AUDIT_KEY, batch=4, on_batch=stop_in_the_audit_trail)
    partial = counts(target)
    assert partial["holds"] == HOLDS
    assert partial["audit"] == 4
    assert partial["users"] == 0

    report = copy_install(made.install, target, AUDIT_KEY, batch=4)
    assert report.complete
    assert counts(target) == EXPECTED
    assert report.tables["holds"].copied == 0  # all were there already
    assert report.tables["audit"].copied == EXPECTED["audit"] - 4
    again = copy_install(made.install, target, AUDIT_KEY)
    assert sum(c.copied for c in again.tables.values()) == 0
    assert counts(target) == EXPECTED


async def test_a_database_other_nodes_already_use_is_refused_before_anything_is_written(
    tmp_path: Path, made: Made, target: SyncDatabase
) -> None:
    other = await make_install(tmp_path / "other", holds=1)
    copy_install(other.install, target, AUDIT_KEY)
    before = counts(target)
    with pytest.raises(CopyRefused, match="already used by other nodes"):
        copy_install(made.install, target, AUDIT_KEY)
    assert counts(target) == before


async def test_a_trail_that_does_not_verify_under_the_key_is_reported(
    made: Made, target: SyncDatabase
) -> None:
    report = copy_install(made.install, target, bytes(32))
    assert not report.complete
    assert report.audit_problem is not None
    assert report.audit_problem.seq == 1


async def test_an_install_of_the_earlier_release_copies_its_bodies_from_their_files(
    made: Made, target: SyncDatabase
) -> None:
    """Never started by this release, so its bodies are still files (``store.earlier``)."""
    files = as_earlier_release(made.install.held_db.parent)
    assert len(files) == HOLDS - 1 + HOLDS  # the purged hold has none; every entry has one
    report = copy_install(made.install, target, AUDIT_KEY)
    assert report.complete
    assert report.bodies_missing == []
    sealer = Sealer(STORE_KEY)
    bodies = dict(rows(target, "SELECT hold_id, body FROM hold_bodies"))
    assert sorted(bodies) == sorted(made.hold_ids[1:])
    for n, hold_id in enumerate(made.hold_ids[1:], start=1):
        assert sealer.open(hold_id, bytes(bodies[hold_id])) == body(n)
    queued = dict(rows(target, "SELECT queue_id, body FROM queue_bodies"))
    for n, queue_id in enumerate(made.queue_ids):
        assert sealer.open(f"queue:{queue_id}", bytes(queued[queue_id])) == body(n)
