"""The embedded store keeps sealed bodies in its database: a new hold writes nothing beside
it, a purged body is gone from the file's bytes, and the body files of the release before are
taken in at open, then read, re-sealed, purged, backed up and restored like any other."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from gateway.store.backup import restore_sqlite, take_sqlite
from gateway.store.crypto import Sealer
from gateway.store.queued import NewQueued, QueuedRecipient
from gateway.store.records import AuditRecord, NewNotice
from gateway.store.sqlite import HELD_DB, SqliteStore, tables
from store.backends import AUDIT_KEY, new_hold
from store.earlier import VERSION, as_earlier_release

OLD, NEW = b"o" * 32, b"n" * 32
BODY = b"Subject: about a pupil\r\n\r\nThe body names a child: Quokka-Tangerine.\r\n"


def queued(key: str) -> NewQueued:
    return NewQueued(
        key,
        "head@school.test",
        (QueuedRecipient("dsl@direct.test", "direct.test"),),
        (),
        BODY,
        "127.0.0.1",
        "mta.school.test",
        "ESMTP",
        "<q@school.test>",
    )


def rows(store: SqliteStore, sql: str, *values: object) -> list[tuple[object, ...]]:
    return store.file.call(lambda: store.connection.execute(sql, values).fetchall())


def folders(data_dir: Path) -> list[str]:
    return sorted(p.name for p in data_dir.iterdir() if p.is_dir())


def existing(paths: dict[str, Path]) -> list[Path]:
    return [p for p in paths.values() if p.exists()]


def raw(data_dir: Path) -> bytes:
    """Every byte of the hold store's files as they lie on disk (the database and its log)."""
    return b"".join(p.read_bytes() for p in sorted(data_dir.glob(f"{HELD_DB}*")) if p.is_file())


async def test_a_new_hold_and_queue_entry_keep_their_bodies_in_the_database(
    tmp_path: Path,
) -> None:
    store = SqliteStore(tmp_path, Sealer(OLD), audit_key=AUDIT_KEY)
    try:
        hold, _ = await store.hold(new_hold(message=BODY))
        entry, _ = await store.enqueue(queued("q1"))
        [(hold_id, sealed)] = rows(store, "SELECT hold_id, body FROM hold_bodies")
        [(queue_id, sealed_entry)] = rows(store, "SELECT queue_id, body FROM queue_bodies")
        assert (hold_id, queue_id) == (hold.id, entry.id)
        for body in (sealed, sealed_entry):
            assert isinstance(body, bytes)
            assert b"Quokka" not in body
        assert await store.message(hold.id) == BODY
        assert await store.queued_message(entry.id) == BODY
        # Nothing written beside the database: no file per body.
        assert folders(tmp_path) == []
        # A finished entry's body goes with the transaction that finished it.
        await store.purge_queued(entry.id, [AuditRecord("queue-purged", "", "alice", {})])
        assert rows(store, "SELECT count(*) FROM queue_bodies") == [(0,)]
    finally:
        await store.close()


async def test_a_purged_body_is_gone_from_the_bytes_of_the_database_files(
    tmp_path: Path,
) -> None:
    store = SqliteStore(tmp_path, Sealer(OLD), audit_key=AUDIT_KEY)
    try:
        kept, _ = await store.hold(new_hold(message=BODY))
        hold, _ = await store.hold(new_hold(message=BODY))
        [(sealed,)] = rows(store, "SELECT body FROM hold_bodies WHERE hold_id = ?", hold.id)
        assert isinstance(sealed, bytes)
        assert sealed in raw(tmp_path)  # a test that can fail: it is there before the purge
        assert await store.purge_body(hold.id, [AuditRecord("purged", hold.id, "alice", {})])
        assert sealed[20:52] not in raw(tmp_path)
        assert await store.message(kept.id) == BODY
    finally:
        await store.close()
    assert sealed[20:52] not in raw(tmp_path)


async def test_bodies_of_the_earlier_release_are_taken_in_and_read_rotate_and_purge(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    store = SqliteStore(data, Sealer(OLD), audit_key=AUDIT_KEY)
    try:
        holds = [(await store.hold(new_hold(message=BODY + b"%d" % n)))[0].id for n in range(3)]
        entry, _ = await store.enqueue(queued("q1"))
        await store.queue_notices([NewNotice("held", holds[0], "", ("s@school.test",), b"n")])
    finally:
        await store.close()
    files = as_earlier_release(data)
    assert sorted(files) == sorted([*holds, entry.id])
    stray = data / "held" / "0000000000000000.msg"  # a blob without its row: left alone
    stray.write_bytes(b"not ours to judge")

    ring = SqliteStore(data, Sealer(NEW, [OLD]), audit_key=AUDIT_KEY)
    try:
        assert existing(files) == []
        assert stray.exists()
        assert rows(ring, "PRAGMA user_version") == [(VERSION + 1,)]
        assert [await ring.message(h) for h in holds] == [BODY + b"%d" % n for n in range(3)]
        assert await ring.queued_message(entry.id) == BODY
        done = await ring.bodies.reseal()
        assert (done.moved, done.current, done.unreadable) == (5, 0, [])  # 3 + 1 + the notice
        assert set((await ring.bodies.census()).keys) == {Sealer(NEW).current_id}
        assert await ring.purge_body(holds[0])
        assert not await ring.purge_body(holds[0])  # nothing left to purge
    finally:
        await ring.close()

    alone = SqliteStore(data, Sealer(NEW), audit_key=AUDIT_KEY)
    try:
        assert [await alone.message(h) for h in holds[1:]] == [BODY + b"1", BODY + b"2"]
        assert await alone.queued_message(entry.id) == BODY
    finally:
        await alone.close()


async def test_a_take_in_cut_off_before_the_files_went_is_finished_at_the_next_open(
    tmp_path: Path,
) -> None:
    store = SqliteStore(tmp_path, Sealer(OLD), audit_key=AUDIT_KEY)
    try:
        hold, _ = await store.hold(new_hold(message=BODY))
        purged, _ = await store.hold(new_hold(message=BODY))
    finally:
        await store.close()
    files = as_earlier_release(tmp_path)
    kept = {hold_id: path.read_bytes() for hold_id, path in files.items()}
    SqliteStore(tmp_path, Sealer(OLD), audit_key=AUDIT_KEY).file.close_now()
    # As if killed after the COMMIT that took them in, before the files were removed; and
    # one of the holds purged since: its file must not bring the body back.
    for hold_id, body in kept.items():
        files[hold_id].write_bytes(body)
    again = SqliteStore(tmp_path, Sealer(OLD), audit_key=AUDIT_KEY)
    try:
        assert await again.purge_body(purged.id)
    finally:
        await again.close()
    files[purged.id].write_bytes(kept[purged.id])

    last = SqliteStore(tmp_path, Sealer(OLD), audit_key=AUDIT_KEY)
    try:
        assert existing(files) == []
        assert await last.message(hold.id) == BODY
        assert rows(last, "SELECT count(*) FROM hold_bodies WHERE hold_id = ?", purged.id) == [(0,)]
    finally:
        await last.close()


async def test_a_backup_of_a_store_taken_in_from_files_restores_its_bodies(
    tmp_path: Path,
) -> None:
    data, backup, fresh = tmp_path / "data", tmp_path / "backup", tmp_path / "fresh"
    store = SqliteStore(data, Sealer(OLD), audit_key=AUDIT_KEY)
    try:
        hold, _ = await store.hold(new_hold(message=BODY))
    finally:
        await store.close()
    as_earlier_release(data)
    SqliteStore(data, Sealer(OLD), audit_key=AUDIT_KEY).file.close_now()  # as `store backup`
    taken = take_sqlite(data, backup, tmp_path / "witness.log", "audit-id")
    assert sorted(taken.manifest["files"]) == [HELD_DB]
    assert taken.manifest["keys"]["store"] == [Sealer(OLD).current_id]
    restore_sqlite(backup, taken.manifest, fresh, tmp_path / "witness-2.log")
    restored = SqliteStore(fresh, Sealer(OLD), audit_key=AUDIT_KEY)
    try:
        assert await restored.message(hold.id) == BODY
    finally:
        await restored.close()


async def test_bodies_around_the_large_size_read_back_whole_and_once(tmp_path: Path) -> None:
    # From tables.LARGE_BODY on a body is written through a blob handle, in chunks: every
    # size around the limit and the chunk reads back byte for byte, as one row each.
    store = SqliteStore(tmp_path, Sealer(OLD), audit_key=AUDIT_KEY)
    sizes = [tables.LARGE_BODY - 100, tables.LARGE_BODY, 3 * 2**20 + 7]
    try:
        for n, size in enumerate(sizes):
            body = bytes((i * 7 + n) % 251 for i in range(size))
            hold, _ = await store.hold(new_hold(key=f"large-{n}", message=body))
            entry, _ = await store.enqueue(dataclasses.replace(queued(f"large-q{n}"), message=body))
            assert await store.message(hold.id) == body
            assert await store.queued_message(entry.id) == body
        assert rows(store, "SELECT count(*) FROM hold_bodies") == [(len(sizes),)]
        assert rows(store, "SELECT count(*) FROM queue_bodies") == [(len(sizes),)]
    finally:
        await store.close()
