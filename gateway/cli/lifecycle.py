"""`gateway store backup|restore|rotate-key|new-key`: the store's life over years.

``backup DIR`` takes a consistent snapshot while mail flows (``store.backup``), ``restore DIR``
puts one back into an empty data directory and checks it (hashes, keys, the audit chain, every
body opened), ``new-key FILE`` writes a fresh store key and ``rotate-key`` moves every sealed
body to the configured key (``store.rotation``). The keys are never in a backup.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from gateway.audit import witness
from gateway.cli.exits import EXIT_FINDING, EXIT_OK, EXIT_USAGE
from gateway.config.settings import Settings
from gateway.config.values import StoreBackend
from gateway.errors import ConfigError, DecryptError
from gateway.runtime.parts import data_dir, open_store
from gateway.store.auditkey import KEY_FILE as AUDIT_KEY_FILE
from gateway.store.auditkey import load_audit_key
from gateway.store.backup import (
    MANIFEST,
    BackupRefused,
    check_keys,
    empty_target,
    manifest,
    read_manifest,
    restore_sqlite,
    take_sqlite,
)
from gateway.store.crypto import key_id, load_sealer, new_key_file
from gateway.store.postgres import PgStore
from gateway.store.protocols import HoldStore
from gateway.store.queries import AuditQuery, HoldQuery
from gateway.store.safeio import write_atomic
from gateway.store.sqlite import SqliteStore

KEYS_NOT_COPIED = (
    "the keys are NOT in the backup: keep the store key and the audit key elsewhere (without"
    " the store key no held message or queued body can be read, ever)"
)


def add_commands(actions: Any, common: argparse.ArgumentParser) -> None:
    backup = actions.add_parser(
        "backup", parents=[common], help="a consistent snapshot into DIR (while mail flows)"
    )
    backup.add_argument("folder", metavar="DIR", type=Path, help="a new or empty folder")
    backup.set_defaults(run=run_backup)
    restore = actions.add_parser(
        "restore", parents=[common], help="put a backup back into an empty data directory"
    )
    restore.add_argument("folder", metavar="DIR", type=Path, help="a folder `backup` made")
    restore.set_defaults(run=run_restore)
    actions.add_parser(
        "rotate-key",
        parents=[common],
        help="re-seal every body under [store] key_file (old keys: [store] old_key_files)",
    ).set_defaults(run=run_rotate)
    new = actions.add_parser("new-key", parents=[common], help="write a fresh store key to FILE")
    new.add_argument("file", metavar="FILE", type=Path)
    new.set_defaults(run=run_new_key)


def _witness_path(settings: Settings) -> Path:
    configured = settings.audit.witness_file
    return settings.path(configured) if configured else data_dir(settings) / witness.WITNESS_FILE


def _refused(exc: Exception) -> int:
    print(f"gateway: {exc}", file=sys.stderr)
    return EXIT_FINDING


# --- backup ------------------------------------------------------------------------------


def run_backup(args: argparse.Namespace, settings: Settings) -> int:
    try:
        return asyncio.run(_backup(args.folder, settings))
    except BackupRefused as exc:
        return _refused(exc)


async def _backup(target: Path, settings: Settings) -> int:
    folder = data_dir(settings)
    audit_id = key_id(load_audit_key(settings, folder))
    if settings.store.backend is StoreBackend.POSTGRESQL:
        return await _backup_manifest(target, settings, audit_id)
    store = await open_store(settings)  # brings the schema up to date before the snapshot
    await store.close()
    taken = take_sqlite(folder, target, _witness_path(settings), audit_id)
    found = taken.manifest
    print(f"backed up {folder} to {target}: {len(found['files'])} files, {MANIFEST}")
    _describe(found)
    print(KEYS_NOT_COPIED)
    return EXIT_OK


async def _backup_manifest(target: Path, settings: Settings, audit_id: str) -> int:
    empty_target(target)
    store = await open_store(settings)
    try:
        assert isinstance(store, PgStore)
        census = await store.bodies.census()
        head = await store.audit_head()
        counts = {
            "holds": await store.count_holds(HoldQuery()),
            "queue": await store.queue_depth(),
            "audit": await store.count_audit(AuditQuery()),
        }
    finally:
        await store.close()
    found = manifest("postgresql", head, census, audit_id, {}, counts)
    write_atomic(target / MANIFEST, json.dumps(found, indent=2).encode() + b"\n")
    # The manifest first, the dump after: the chain only grows, so a dump taken after it holds
    # the recorded head even while mail flows; one taken before it might not.
    print(
        f"PostgreSQL: {target / MANIFEST} records the audit head and the keys to check a"
        " restored database against. Now dump the database itself, after this command:"
        f" pg_dump -Fc --file {target / 'gateway.pgdump'} DBNAME (or take your PostgreSQL"
        " backup); to restore: pg_restore into an empty database, then `gateway store restore"
        f" {target}`"
    )
    _describe(found)
    print(KEYS_NOT_COPIED)
    return EXIT_OK


def _describe(found: dict[str, Any]) -> None:
    head = found["audit_head"]
    shown = f"{head['seq']}:{head['hash']}" if head else "none (an empty trail)"
    print(f"audit head: {shown}")
    keys = found["keys"]
    print(f"needs store key {', '.join(keys['store']) or '(none)'}; audit key {keys['audit']}")


# --- restore -----------------------------------------------------------------------------


def run_restore(args: argparse.Namespace, settings: Settings) -> int:
    try:
        return asyncio.run(_restore(args.folder, settings))
    except (BackupRefused, ConfigError) as exc:
        return _refused(exc)


async def _restore(backup: Path, settings: Settings) -> int:
    found = read_manifest(backup)
    folder = data_dir(settings)
    if settings.store.backend.value != found["backend"]:
        raise BackupRefused(f"a {found['backend']} backup; this configuration's store is another")
    sealer = load_sealer(settings, folder, make=False)
    if (
        not (settings.audit.key or settings.audit.key_file)
        and not (folder / AUDIT_KEY_FILE).exists()
    ):
        raise BackupRefused(f"{folder / AUDIT_KEY_FILE} is missing: put the audit key back first")
    check_keys(found, sealer.key_ids, key_id(load_audit_key(settings, folder)))
    if found["backend"] == "sqlite":
        placed = restore_sqlite(backup, found, folder, _witness_path(settings))
        print(f"restored {len(placed)} files into {folder}")
    store = await open_store(settings)
    try:
        return await _check_restored(store, found)
    finally:
        await store.close()


async def _check_restored(store: HoldStore, found: dict[str, Any]) -> int:
    checked, problem = await store.verify_audit()
    if problem is not None:
        return _refused(BackupRefused(f"the restored audit trail does not verify: {problem}"))
    head = found["audit_head"]
    if head is not None:
        entry = await store.audit_entry(int(head["seq"]))
        if entry is None or entry.hash != head["hash"]:
            return _refused(BackupRefused(f"the backup's audit head {head['seq']} is not there"))
    unreadable = 0
    holds = [h for h in await store.holds(HoldQuery()) if h.purged_at is None]
    for hold in holds:
        try:
            await store.message(hold.id)
        except (DecryptError, KeyError):
            unreadable += 1
            print(f"gateway: hold {hold.id}: its body cannot be opened", file=sys.stderr)
    print(f"audit trail: {checked} entries verified, the backup's head is there")
    print(f"holds: {len(holds)} bodies opened with the configured keys, {unreadable} not")
    return EXIT_FINDING if unreadable else EXIT_OK


# --- keys --------------------------------------------------------------------------------


def run_new_key(args: argparse.Namespace, settings: Settings) -> int:
    try:
        made = new_key_file(args.file)
    except FileExistsError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"wrote a new store key to {args.file} (key id {made}, mode 0600)")
    print("next: [store] key_file = that file, the old one in old_key_files; restart; rotate-key")
    return EXIT_OK


def run_rotate(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(_rotate(settings))


async def _rotate(settings: Settings) -> int:
    store = await open_store(settings)
    try:
        assert isinstance(store, SqliteStore | PgStore)
        sealer = load_sealer(settings, data_dir(settings), make=False)
        current = sealer.current_id
        old = sorted(sealer.key_ids - {current})
        print(f"sealing under key {current}; opening also with {', '.join(old) or '(no old key)'}")
        done = await store.bodies.reseal()
        census = await store.bodies.census()
    finally:
        await store.close()
    print(f"re-sealed {done.moved} bodies under key {current}; {done.current} already were")
    for owner in done.unreadable:
        print(f"gateway: {owner}: no configured key opens it", file=sys.stderr)
    left = {k: n for k, n in census.keys.items() if k != current}
    if done.unreadable or left:
        named = ", ".join(
            f"{n} under {k or 'an unnamed (old format) key'}" for k, n in left.items()
        )
        print(
            f"not finished: {named or 'some bodies cannot be opened'}. If a gateway still seals"
            " with an old key, restart every gateway with this configuration; run this again"
        )
        return EXIT_FINDING
    if not old:
        print(f"every sealed body is under key {current}")
        return EXIT_OK
    print(
        f"every sealed body is under key {current}: the store no longer needs"
        f" {', '.join(old)}. Remove [store] old_key_files and restart; keep the old key"
        " file as long as you keep backups made before now (they need it)"
    )
    return EXIT_OK
