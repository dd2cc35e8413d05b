"""A trail from before the keyed chain: taken up with nothing lost, and still verified."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from gateway.core.auditchain import GENESIS, KEYED, legacy_digest
from gateway.store import AuditRecord
from gateway.store.crypto import Sealer
from gateway.store.sqlite import HELD_DB, SqliteStore, tables

KEY = bytes(range(32))


def old_trail(folder: Path, count: int) -> list[tuple[int, str]]:
    """A held.sqlite3 at schema version 2 with ``count`` entries chained by plain SHA-256."""
    db = sqlite3.connect(folder / HELD_DB, isolation_level=None)
    db.executescript(tables.VERSION_1 + ";" + tables.VERSION_2 + "; PRAGMA user_version = 2;")
    prev, heads = GENESIS, []
    for seq in range(1, count + 1):
        data = {"reason": f"reason {seq}"}
        digest = legacy_digest(seq, 1.0e9 + seq, "rejected", "h1", "Jo", data, prev)
        db.execute(
            "INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (seq, 1.0e9 + seq, "rejected", "h1", "Jo", json.dumps(data), prev, digest),
        )
        heads.append((seq, digest))
        prev = digest
    db.close()
    return heads


async def test_a_trail_from_before_the_key_still_verifies_after_the_migration(
    tmp_path: Path,
) -> None:
    heads = old_trail(tmp_path, 3)
    store = SqliteStore(tmp_path, Sealer(bytes(32)), audit_key=KEY)
    try:
        assert await store.verify_audit() == (4, None)
        entries = list(await store.audit_entries())
        # Nothing lost or re-hashed: the old hashes, which a log may have witnessed, stand.
        assert [(e.seq, e.hash) for e in entries[:3]] == heads
        marker = entries[3]
        assert (marker.event, marker.actor, marker.prev) == (KEYED, "gateway", heads[-1][1])
        assert marker.data == {
            "legacy_entries": 3,
            "legacy_head": heads[-1][1],
            "rule": "hmac-sha256",
        }
        await store.append_audit([AuditRecord("viewed", "h1", "Sam", {})])
        assert await store.verify_audit() == (5, None)
    finally:
        await store.close()

    # Opened again: the migration point is recorded once.
    again = SqliteStore(tmp_path, Sealer(bytes(32)), audit_key=KEY)
    try:
        assert [e.event for e in await again.audit_entries()].count(KEYED) == 1
        # An old entry edited and the old entries re-hashed by their rule: the chain-keyed
        # entry no longer follows them, and cannot be re-sealed without the key.
        db = again.connection
        prev = GENESIS
        for seq, at, event, hold_id, actor, data in db.execute(
            "SELECT seq, at, event, hold_id, actor, data FROM audit WHERE seq <= 3 ORDER BY seq"
        ).fetchall():
            actor = "Someone else" if seq == 2 else actor
            digest = legacy_digest(seq, at, event, hold_id, actor, json.loads(data), prev)
            db.execute(
                "UPDATE audit SET actor = ?, prev = ?, hash = ? WHERE seq = ?",
                (actor, prev, digest, seq),
            )
            prev = digest
        count, problem = await again.verify_audit()
        assert count == 5
        assert str(problem) == "entry 4: does not follow the entry before it"
    finally:
        await again.close()

    # Under another key, nothing keyed verifies.
    other = SqliteStore(tmp_path, Sealer(bytes(32)), audit_key=b"x" * 32)
    try:
        _, problem = await other.verify_audit()
        assert problem is not None
    finally:
        await other.close()


async def test_the_audit_key_is_made_at_first_start_readable_by_the_owner_only(
    tmp_path: Path,
) -> None:
    store = SqliteStore(tmp_path, Sealer(bytes(32)))
    try:
        await store.append_audit([AuditRecord("viewed", "h1", "Sam", {})])
        assert await store.verify_audit() == (1, None)
    finally:
        await store.close()
    key_file = tmp_path / "audit.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert len(bytes.fromhex(key_file.read_text().strip())) == 32
