"""The accounts file, ``users.sqlite3``: reviewer accounts, the sign-in throttle, web sessions.

One ``Database`` per file and process, opened at first use and kept: the schema runs once,
and every statement runs on the file's thread. Callers are synchronous and already off the
event loop (the web UI calls them in a worker thread, argon2 being slow on purpose; the command
line has no loop), so they wait with ``Database.call``.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from gateway.store.sqlite.database import Database, script

T = TypeVar("T")

VERSION_1 = """
CREATE TABLE IF NOT EXISTS users (
    name         TEXT PRIMARY KEY,
    role         TEXT NOT NULL,
    hash         TEXT NOT NULL,
    disabled     INTEGER NOT NULL DEFAULT 0,
    created_at   REAL NOT NULL,
    password_at  REAL NOT NULL,
    signed_in_at REAL
);
CREATE TABLE IF NOT EXISTS sign_in_failures (
    key          TEXT PRIMARY KEY,  -- "user:<name>" or "addr:<ip>"
    failures     INTEGER NOT NULL,
    last_at      REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    key          TEXT PRIMARY KEY,   -- SHA-256 of the session id, hex
    user         TEXT NOT NULL,
    csrf         TEXT NOT NULL,
    client       TEXT NOT NULL,
    created_at   REAL NOT NULL,
    seen_at      REAL NOT NULL,
    flash        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS sessions_user ON sessions (user);
"""
MIGRATIONS = (script(VERSION_1),)

_files: dict[Path, Database] = {}
_opening = threading.Lock()


def accounts_file(path: Path) -> Database:
    key = path.absolute()
    with _opening:
        found = _files.get(key)
        if found is not None and not found.path.exists():  # removed (a test's folder)
            found.close_now()
            found = None
        if found is None:
            found = _files[key] = Database(key, MIGRATIONS, name="accounts")
        return found


def read(path: Path, work: Callable[[sqlite3.Connection], T]) -> T:
    file = accounts_file(path)
    return file.call(lambda: work(file.db))


def write(path: Path, work: Callable[[sqlite3.Connection], T]) -> T:
    """``work`` in one write transaction (BEGIN IMMEDIATE: writers queue, across processes)."""
    file = accounts_file(path)
    return file.call(lambda: file.write(lambda: work(file.db)))
