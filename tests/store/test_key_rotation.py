"""A key rotation cut off half way (the process killed between two bodies) leaves every body
readable under the key ring, and a second run finishes it; then the new key alone opens all.
Also: blobs of older releases (no key id) still open and are moved like any other."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.errors import DecryptError
from gateway.store.crypto import VERSION_1, Sealer
from gateway.store.postgres.database import Database
from gateway.store.postgres.store import PgStore
from gateway.store.records import NewNotice
from gateway.store.sqlite import SqliteStore, rotation
from tests.store.backends import AUDIT_KEY, SEALING_KEY, Nodes, new_hold

OLD, NEW, AUDIT = b"o" * 32, b"n" * 32, b"a" * 32


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs."""


async def test_an_interrupted_rotation_loses_nothing_and_a_rerun_finishes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SqliteStore(tmp_path, Sealer(OLD), audit_key=AUDIT)
    ids = [(await store.hold(new_hold(message=f"body {n}".encode())))[0].id for n in range(5)]
    await store.close()

    ring = SqliteStore(tmp_path, Sealer(NEW, [OLD]), audit_key=AUDIT)
    real, resealed = rotation.Bodies._resealed, []

    def dies_on_the_third(
        self: rotation.Bodies, owner: str, blob: bytes
    ) -> tuple[str, bytes | None]:
        if len(resealed) == 2:
            raise Killed  # inside the third body's write transaction, before its UPDATE
        resealed.append(owner)
        return real(self, owner, blob)

    monkeypatch.setattr(rotation.Bodies, "_resealed", dies_on_the_third)
    with pytest.raises(Killed):
        await ring.bodies.reseal()
    monkeypatch.setattr(rotation.Bodies, "_resealed", real)
    # Half way: every hold opens with the ring, and a hold written now is under the new key.
    assert [await ring.message(i) for i in ids] == [f"body {n}".encode() for n in range(5)]
    late = (await ring.hold(new_hold(message=b"late")))[0].id
    again = await ring.bodies.reseal()
    assert (again.moved, again.current, again.unreadable) == (3, 3, [])
    await ring.close()

    alone = SqliteStore(tmp_path, Sealer(NEW), audit_key=AUDIT)
    try:
        assert await alone.message(late) == b"late"
        assert [await alone.message(i) for i in ids] == [f"body {n}".encode() for n in range(5)]
    finally:
        await alone.close()


def test_a_blob_of_an_older_release_opens_under_any_key_of_the_ring() -> None:
    sealer = Sealer(NEW, [OLD])
    old_blob = VERSION_1 + bytes(12) + AESGCM(OLD).encrypt(bytes(12), b"kept", b"h1")
    assert sealer.open("h1", old_blob) == b"kept"
    assert not sealer.is_current(old_blob)
    assert sealer.is_current(sealer.reseal("h1", old_blob))
    with pytest.raises(DecryptError):
        Sealer(NEW).open("h1", sealer.seal("h1", b"x")[:-1] + b"\0")
    with pytest.raises(DecryptError, match="not given"):
        Sealer(OLD).open("h1", sealer.seal("h1", b"x"))


async def test_both_backends_move_holds_and_notices_to_the_new_key(store_nodes: Nodes) -> None:
    first = await store_nodes.node()
    ids = [(await first.hold(new_hold(message=f"body {n}".encode())))[0].id for n in range(3)]
    notice = NewNotice("held", ids[0], "gateway@school.test", ("dsl@school.test",), b"notice")
    await first.queue_notices([notice])
    ring = Sealer(NEW, [SEALING_KEY])
    rotating = _node(store_nodes, ring)
    if isinstance(rotating, PgStore):
        await rotating.open()
    store_nodes.opened.append(rotating)
    assert isinstance(rotating, SqliteStore | PgStore)
    done = await rotating.bodies.reseal()
    assert (done.moved, done.unreadable) == (4, [])
    assert set((await rotating.bodies.census()).keys) == {ring.current_id}
    alone = _node(store_nodes, Sealer(NEW))
    if isinstance(alone, PgStore):
        await alone.open()
    store_nodes.opened.append(alone)
    assert [await alone.message(i) for i in ids] == [f"body {n}".encode() for n in range(3)]
    assert [n.message for n in await alone.due_notices(2e9)] == [b"notice"]


def _node(nodes: Nodes, sealer: Sealer) -> SqliteStore | PgStore:
    if nodes.backend == "sqlite":
        return SqliteStore(nodes.folder, sealer, nodes.clock, audit_key=AUDIT_KEY)
    return PgStore(
        Database(nodes.dsn, pool_size=2, name="rotating"), sealer, AUDIT_KEY, nodes.clock
    )
