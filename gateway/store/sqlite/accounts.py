"""The accounts file, ``users.sqlite3``: reviewer accounts, the sign-in throttle, web sessions.

One ``SqliteAccounts`` per file and process, opened at first use and kept: the schema runs
once, and every statement runs on the file's thread. Its callers are synchronous and already
off the event loop (the web UI calls them in a worker thread, argon2 being slow on purpose; the
command line has no loop), so each method waits with ``Database.call``.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from gateway.store.accounts import NewSession, Role, SessionRecord, User
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

_USER = "u.name, u.role, u.disabled, u.created_at, u.password_at, u.signed_in_at"
_SESSION = f"SELECT s.key, s.csrf, s.created_at, s.seen_at, s.flash, {_USER} FROM sessions s"  # noqa: S608


def user_from_row(row: Sequence[object]) -> User:
    """An account from its columns in the order ``_USER`` names them."""
    name, role, disabled, created_at, password_at, signed_in_at = row
    return User(
        name=str(name),
        role=Role(str(role)),
        disabled=bool(disabled),
        created_at=float(str(created_at)),
        password_at=float(str(password_at)),
        signed_in_at=float(str(signed_in_at)) if signed_in_at is not None else None,
    )


class SqliteAccounts:
    """Implements ``UserRecords``, ``SignInFailures`` and ``SessionRecords``."""

    def __init__(self, path: Path) -> None:
        self._file = Database(path, MIGRATIONS, name="accounts")
        self.path = self._file.path

    def _read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        return self._file.call(lambda: work(self._file.db))

    def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        return self._file.call(lambda: self._file.write(lambda: work(self._file.db)))

    def close(self) -> None:
        self._file.close_now()

    # --- users -----------------------------------------------------------------------------

    def user(self, name: str) -> tuple[User, str] | None:
        sql = f"SELECT {_USER}, u.hash FROM users u WHERE u.name = ?"  # noqa: S608
        row = self._read(lambda db: db.execute(sql, (name,)).fetchone())
        return (user_from_row(row[:-1]), str(row[-1])) if row else None

    def users(self) -> list[User]:
        sql = f"SELECT {_USER} FROM users u ORDER BY u.name"  # noqa: S608
        return [user_from_row(row) for row in self._read(lambda db: db.execute(sql).fetchall())]

    def add_user(self, user: User, digest: str) -> bool:
        """False when the name is taken."""

        def insert(db: sqlite3.Connection) -> bool:
            if db.execute("SELECT 1 FROM users WHERE name = ?", (user.name,)).fetchone():
                return False
            db.execute(
                "INSERT INTO users (name, role, hash, created_at, password_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (user.name, user.role.value, digest, user.created_at, user.password_at),
            )
            return True

        return self._write(insert)

    def set_password(self, name: str, digest: str, at: float) -> bool:
        sql = "UPDATE users SET hash = ?, password_at = ? WHERE name = ?"
        return self._write(lambda db: db.execute(sql, (digest, at, name)).rowcount == 1)

    def set_disabled(self, name: str, disabled: bool) -> bool:
        sql = "UPDATE users SET disabled = ? WHERE name = ?"
        return self._write(lambda db: db.execute(sql, (int(disabled), name)).rowcount == 1)

    def signed_in(self, name: str, at: float, digest: str) -> None:
        sql = "UPDATE users SET signed_in_at = ?, hash = ? WHERE name = ?"
        self._write(lambda db: db.execute(sql, (at, digest, name)))

    # --- the sign-in throttle --------------------------------------------------------------

    def failures(self, keys: Sequence[str]) -> list[tuple[str, int, float]]:
        """(key, failures in a row, when the last was) for each of ``keys`` with failures."""
        sql = "SELECT failures, last_at FROM sign_in_failures WHERE key = ?"

        def look(db: sqlite3.Connection) -> list[tuple[str, int, float]]:
            rows = [(key, db.execute(sql, (key,)).fetchone()) for key in keys]
            return [(key, int(row[0]), float(row[1])) for key, row in rows if row is not None]

        return self._read(look)

    def add_failure(self, keys: Sequence[str], at: float, forget_before: float) -> None:
        """One more failure for each key; counts last touched at or before ``forget_before``
        start again from one (and are dropped)."""

        def count(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM sign_in_failures WHERE last_at <= ?", (forget_before,))
            for key in keys:
                db.execute(
                    "INSERT INTO sign_in_failures (key, failures, last_at) VALUES (?, 1, ?)"
                    " ON CONFLICT (key) DO UPDATE SET last_at = excluded.last_at,"
                    " failures = CASE WHEN last_at <= ? THEN 1 ELSE failures + 1 END",
                    (key, at, forget_before),
                )

        self._write(count)

    def clear_failures(self, key: str) -> None:
        sql = "DELETE FROM sign_in_failures WHERE key = ?"
        self._write(lambda db: db.execute(sql, (key,)))

    # --- web sessions ----------------------------------------------------------------------

    def add_session(self, new: NewSession, replacing: str, stale: tuple[float, float]) -> None:
        """Store a new session; drop ``replacing`` (a key) and every session created before
        ``stale[0]`` or last seen before ``stale[1]``."""

        def insert(db: sqlite3.Connection) -> None:
            if replacing:
                db.execute("DELETE FROM sessions WHERE key = ?", (replacing,))
            db.execute("DELETE FROM sessions WHERE created_at < ? OR seen_at < ?", stale)
            db.execute(
                "INSERT INTO sessions (key, user, csrf, client, created_at, seen_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (new.key, new.user, new.csrf, new.client, new.at, new.at),
            )

        self._write(insert)

    def session(self, key: str) -> SessionRecord | None:
        sql = f"{_SESSION} JOIN users u ON u.name = s.user WHERE s.key = ?"
        row = self._read(lambda db: db.execute(sql, (key,)).fetchone())
        if row is None:
            return None
        key, csrf, created_at, seen_at, flash, *account = row
        return SessionRecord(key, user_from_row(account), csrf, created_at, seen_at, flash)

    def touch_session(self, key: str, at: float, clear_flash: bool = False) -> None:
        sql = (
            "UPDATE sessions SET seen_at = ?, flash = '' WHERE key = ?"
            if clear_flash
            else "UPDATE sessions SET seen_at = ? WHERE key = ?"
        )
        self._write(lambda db: db.execute(sql, (at, key)))

    def set_flash(self, key: str, flash: str) -> None:
        sql = "UPDATE sessions SET flash = ? WHERE key = ?"
        self._write(lambda db: db.execute(sql, (flash, key)))

    def end_session(self, key: str) -> None:
        self._write(lambda db: db.execute("DELETE FROM sessions WHERE key = ?", (key,)))

    def end_sessions(self, user: str, keep: str = "") -> int:
        """End every session of ``user`` but the one with key ``keep``; how many ended."""
        sql = "DELETE FROM sessions WHERE user = ? AND key != ?"
        return self._write(lambda db: int(db.execute(sql, (user, keep)).rowcount))


_files: dict[Path, SqliteAccounts] = {}
_opening = threading.Lock()


def accounts_store(path: Path) -> SqliteAccounts:
    """The process's one ``SqliteAccounts`` for ``path`` (opened now if need be)."""
    key = path.absolute()
    with _opening:
        found = _files.get(key)
        if found is not None and not found.path.exists():  # removed (a test's folder)
            found.close()
            found = None
        if found is None:
            found = _files[key] = SqliteAccounts(key)
        return found
