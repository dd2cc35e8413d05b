"""Backups of the store: a consistent snapshot taken while mail flows, and its restore.

SQLite: every database file of the data directory is copied with SQLite's online backup API
(``sqlite3.Connection.backup``: one read transaction, so a consistent copy while the gateway
writes; https://www.sqlite.org/backup.html), the sealed bodies with it (they are rows of the
hold store's file, committed with the rows that need them), and the audit witness file first
of all (its head is then never ahead of the snapshot's). A
``manifest.json`` written last names what was taken, when, by which release, the schema
versions, the audit head and the SHA-256 of every file; a folder without it is no backup.

The keys are never copied: a backup that carries its key protects nothing. The manifest names
them by id (``crypto.key_id``) so a restore can say which key it needs.

PostgreSQL: the database is backed up by pg_dump or the operator's PostgreSQL backups; the
gateway writes only the manifest (audit head, key ids, counts) to check a restored database.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway import __version__
from gateway.store.rotation import KeyCensus
from gateway.store.safeio import create_private, private_dir, write_atomic
from gateway.store.sqlite import rotation, trail
from gateway.store.sqlite.store import HELD_DB

MANIFEST = "manifest.json"
FORMAT = 1
WITNESS_NAME = "audit-witness.log"


class BackupRefused(Exception):
    """A backup or restore that would be unsafe or could not be checked; says why."""


def empty_target(target: Path) -> None:
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise BackupRefused(f"{target} is not an empty folder: give a new one")
    private_dir(target)


def manifest(backend: str, head: tuple[int, str] | None, census: KeyCensus, audit_id: str,
             schema: dict[str, int], counts: dict[str, int]) -> dict[str, Any]:  # fmt: skip
    return {
        "format": FORMAT,
        "what": f"gateway store backup ({backend})",
        "backend": backend,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "gateway_version": __version__,
        "schema_version": schema,
        "audit_head": {"seq": head[0], "hash": head[1]} if head else None,
        "keys": {
            "store": sorted(k for k in census.needed() if k is not None),
            "store_unnamed_blobs": census.keys.get(None, 0),  # version 1: sealed before key ids
            "audit": audit_id,
            "copied": False,
        },
        "counts": counts,
        "files": {},
    }


@dataclass
class SqliteBackup:
    """What ``take_sqlite`` copied."""

    manifest: dict[str, Any]


def take_sqlite(data_dir: Path, target: Path, witness: Path, audit_id: str) -> SqliteBackup:
    empty_target(target)
    files: list[str] = []
    if witness.exists():
        write_atomic(target / WITNESS_NAME, witness.read_bytes())
        files.append(WITNESS_NAME)
    schema = {}
    for source in sorted(data_dir.glob("*.sqlite3")):
        schema[source.name] = snapshot(source, target / source.name)
        files.append(source.name)
    db = sqlite3.connect(target / HELD_DB)
    try:
        head = trail.head(db)
        counts = {
            name: int(db.execute(f"SELECT count(*) FROM {name}").fetchone()[0])  # noqa: S608
            for name in ("holds", "queue", "outbox", "audit")
        }
        census = rotation.census_of(db)
    finally:
        db.close()
    found = manifest("sqlite", head, census, audit_id, schema, counts)
    found["files"] = {name: sha256(target / name) for name in files}
    write_atomic(target / MANIFEST, json.dumps(found, indent=2).encode() + b"\n")
    return SqliteBackup(found)


def snapshot(source: Path, copy: Path) -> int:
    """``source`` copied to ``copy`` (0600) in one read transaction; its schema version."""
    create_private(copy)
    origin = sqlite3.connect(source, timeout=30.0)
    target = sqlite3.connect(copy)
    try:
        origin.backup(target)  # all pages in one step: one consistent read
        target.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal
        return int(target.execute("PRAGMA user_version").fetchone()[0])
    finally:
        target.close()
        origin.close()


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(backup: Path) -> dict[str, Any]:
    """The backup's manifest, every file checked against its SHA-256."""
    try:
        found: dict[str, Any] = json.loads((backup / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BackupRefused(
            f"{backup}: no readable {MANIFEST} ({exc}): not a complete backup"
        ) from exc
    if found.get("format") != FORMAT:
        raise BackupRefused(f"{backup}: manifest format {found.get('format')!r}, not {FORMAT}")
    for name, expected in found["files"].items():
        path = backup / name
        if ".." in Path(name).parts or not path.is_file() or sha256(path) != expected:
            raise BackupRefused(f"{backup}: {name} is missing or not what was backed up")
    return found


def check_keys(found: dict[str, Any], store_ids: frozenset[str], audit_id: str) -> None:
    """Refuse a restore the configured keys cannot open or verify."""
    lacking = sorted(set(found["keys"]["store"]) - store_ids)
    if lacking:
        raise BackupRefused(
            f"the backup's bodies are sealed under store key {', '.join(lacking)}; this"
            f" configuration's keys are {', '.join(sorted(store_ids))}: give the key it needs"
            " ([store] key_file, or old_key_files)"
        )
    if found["keys"]["audit"] != audit_id:
        raise BackupRefused(
            f"the backup's audit trail is sealed under audit key {found['keys']['audit']}, this"
            f" configuration's is {audit_id}: give the audit key it needs ([audit] key_file)"
        )


def restore_sqlite(backup: Path, found: dict[str, Any], data_dir: Path, witness: Path) -> list[str]:
    """Copy the checked backup into ``data_dir``, which holds no store (a gateway that ran on
    it made ``held.sqlite3``); the names of the files put in place. A backup of an earlier
    release brings its body files (held/, queue/): the store takes them in at its first
    start (``sqlite.bodyfiles``)."""
    if (data_dir / HELD_DB).exists() or any(data_dir.glob("held/*.msg")):
        raise BackupRefused(
            f"{data_dir} holds a store already (a gateway ran on it): stop it and restore into"
            " an empty data directory (move this one aside)"
        )
    private_dir(data_dir)
    placed = []
    for name in found["files"]:
        data = (backup / name).read_bytes()
        if name == WITNESS_NAME:
            if not witness.exists():
                private_dir(witness.parent)
                write_atomic(witness, data)
                placed.append(str(witness))
            continue
        private_dir((data_dir / name).parent)
        write_atomic(data_dir / name, data)
        placed.append(name)
    return placed
