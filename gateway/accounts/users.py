"""Accounts for the review web UI, and the sign-in throttle.

One SQLite file, ``<data_dir>/users.sqlite3`` (mode 0600: it holds password hashes). An account
has a name, a role (``reviewer`` reviews held mail; ``admin`` also manages accounts), an
argon2id password hash (argon2-cffi's defaults, RFC 9106) and a disabled flag; accounts are
disabled, never deleted, so the audit trail's names keep pointing at someone.

The throttle counts failed sign-ins per account name and per client address. After a few free
failures each further one doubles the wait before the next attempt is even checked, up to
``MAX_DELAY``; a success clears the account's count, and failures are forgotten ``FORGET_AFTER``
the last one.

Every call is synchronous: the web UI runs them in a worker thread (argon2 is meant to be
slow), the command line calls them directly. The file is kept by ``gateway.store.sqlite.accounts``
(one connection per file, on its own thread; the schema runs once).
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from gateway.errors import UserError
from gateway.store.sqlite.accounts import read, write

USERS_DB = "users.sqlite3"
MIN_PASSWORD = 12
MAX_PASSWORD = 1024  # hashing a megabyte of "password" is a cheap way to burn our CPU
_NAME = re.compile(r"[a-z0-9][a-z0-9._@-]{0,63}\Z")

# Throttle: free failures, then 1 s, 2 s, 4 s, ... up to MAX_DELAY before the next attempt.
FREE_FAILURES = {"user": 3, "addr": 10}  # a school's staff may share one public address
MAX_DELAY = 900.0
FORGET_AFTER = 86400.0


class Role(StrEnum):
    REVIEWER = "reviewer"
    ADMIN = "admin"


@dataclass(frozen=True)
class User:
    name: str
    role: Role
    disabled: bool
    created_at: float
    password_at: float
    signed_in_at: float | None = None

    @property
    def admin(self) -> bool:
        return self.role is Role.ADMIN


def normalise_name(name: str) -> str:
    """Account names are lower case: letters, digits and . _ @ -, up to 64 characters."""
    folded = name.strip().lower()
    if not _NAME.match(folded):
        raise UserError(
            f"{name!r} is not an account name: use up to 64 letters, digits, '.', '_', '@' "
            "or '-', starting with a letter or digit"
        )
    return folded


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"a password needs at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise UserError(f"a password may have at most {MAX_PASSWORD} characters")


class Accounts:
    def __init__(
        self,
        path: Path,
        clock: Callable[[], float] = time.time,
        hasher: PasswordHasher | None = None,
    ) -> None:
        self.path = path
        self._clock = clock
        self._hasher = hasher or PasswordHasher()  # argon2id, RFC 9106 low-memory profile
        self._dummy: str | None = None

    # --- reading -------------------------------------------------------------------------

    def get(self, name: str) -> User | None:
        try:
            folded = normalise_name(name)
        except UserError:
            return None
        row = read(self.path, lambda db: db.execute(_SELECT_ONE, (folded,)).fetchone())
        return user_from_row(row) if row else None

    def all(self) -> list[User]:
        rows = read(self.path, lambda db: db.execute(_SELECT_ALL).fetchall())
        return [user_from_row(row) for row in rows]

    # --- changes -------------------------------------------------------------------------

    def add(self, name: str, role: Role | str, password: str) -> User:
        folded = normalise_name(name)
        check_password(password)
        try:
            role = Role(role)
        except ValueError as exc:
            raise UserError(f"{role!r} is not a role: reviewer or admin") from exc
        digest = self._hasher.hash(password)
        now = self._clock()

        def insert(db: sqlite3.Connection) -> None:
            if db.execute("SELECT 1 FROM users WHERE name = ?", (folded,)).fetchone():
                raise UserError(f"there is already an account {folded!r}")
            db.execute(
                "INSERT INTO users (name, role, hash, created_at, password_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (folded, role.value, digest, now, now),
            )

        write(self.path, insert)
        user = self.get(folded)
        assert user is not None
        return user

    def set_password(self, name: str, password: str) -> User:
        check_password(password)
        digest = self._hasher.hash(password)
        return self._change(
            name, "UPDATE users SET hash = ?, password_at = ? WHERE name = ?", digest, self._clock()
        )

    def set_disabled(self, name: str, disabled: bool) -> User:
        return self._change(name, "UPDATE users SET disabled = ? WHERE name = ?", int(disabled))

    def _change(self, name: str, sql: str, *values: object) -> User:
        folded = normalise_name(name)
        changed = write(self.path, lambda db: db.execute(sql, (*values, folded)).rowcount)
        if not changed:
            raise UserError(f"there is no account {folded!r}")
        user = self.get(folded)
        assert user is not None
        return user

    # --- signing in ----------------------------------------------------------------------

    def authenticate(self, name: str, password: str) -> tuple[User | None, str]:
        """(the account, "") when the password is right and the account enabled; else
        (the account or None, why): unknown-account, wrong-password, disabled. The work done
        is the same whether the account exists or not: an unknown name is checked against a
        dummy hash, so the time taken does not tell which names exist."""
        if len(password) > MAX_PASSWORD:
            password = password[:MAX_PASSWORD]
        try:
            folded = normalise_name(name)
        except UserError:
            folded = ""
        row = None
        if folded:
            row = read(self.path, lambda db: db.execute(_SELECT_WITH_HASH, (folded,)).fetchone())
        if row is None:
            self._verify(self._dummy_hash(), password)
            return None, "unknown-account"
        user, digest = user_from_row(row[:-1]), str(row[-1])
        if not self._verify(digest, password):
            return user, "wrong-password"
        if user.disabled:
            return user, "disabled"
        if self._hasher.check_needs_rehash(digest):  # the defaults grew stronger: follow them
            digest = self._hasher.hash(password)
        values = (self._clock(), digest, folded)
        write(
            self.path,
            lambda db: db.execute(
                "UPDATE users SET signed_in_at = ?, hash = ? WHERE name = ?", values
            ),
        )
        return user, ""

    def password_is(self, name: str, password: str) -> bool:
        """Whether ``password`` is the account's (to confirm a change); no side effects."""
        try:
            folded = normalise_name(name)
        except UserError:
            return False
        row = read(
            self.path,
            lambda db: db.execute("SELECT hash FROM users WHERE name = ?", (folded,)).fetchone(),
        )
        return self._verify(str(row[0]) if row else self._dummy_hash(), password) and bool(row)

    def _verify(self, digest: str, password: str) -> bool:
        try:
            return self._hasher.verify(digest, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def _dummy_hash(self) -> str:
        if self._dummy is None:
            self._dummy = self._hasher.hash("not a password: a dummy for unknown names")
        return self._dummy


_SELECT_ALL = (
    "SELECT name, role, disabled, created_at, password_at, signed_in_at FROM users ORDER BY name"
)
_SELECT_ONE = (
    "SELECT name, role, disabled, created_at, password_at, signed_in_at FROM users WHERE name = ?"
)
_SELECT_WITH_HASH = (
    "SELECT name, role, disabled, created_at, password_at, signed_in_at, hash"
    " FROM users WHERE name = ?"
)


def user_from_row(row: Sequence[object]) -> User:
    """An account from its columns in the order the queries above name them (the web
    sessions' join reads them the same way)."""
    name, role, disabled, created_at, password_at, signed_in_at = row
    return User(
        name=str(name),
        role=Role(str(role)),
        disabled=bool(disabled),
        created_at=float(str(created_at)),
        password_at=float(str(password_at)),
        signed_in_at=float(str(signed_in_at)) if signed_in_at is not None else None,
    )


# --- the sign-in throttle ----------------------------------------------------------------------


def delay_after(failures: int, free: int) -> float:
    """Seconds to wait after ``failures`` failures in a row: 0 while they are free, then
    1, 2, 4, ... up to MAX_DELAY."""
    if failures < free:
        return 0.0
    return min(2.0 ** min(failures - free, 30), MAX_DELAY)


def throttle_keys(name: str, client: str) -> list[str]:
    keys = [f"addr:{client}"]
    with contextlib.suppress(UserError):
        keys.insert(0, f"user:{normalise_name(name)}")
    return keys


class Throttle:
    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._clock = clock

    def wait(self, keys: Iterable[str]) -> float:
        """Seconds before another attempt under any of ``keys`` may be checked (0: now)."""
        now = self._clock()
        wanted = list(keys)

        def look(db: sqlite3.Connection) -> list[tuple[str, int, float]]:
            sql = "SELECT failures, last_at FROM sign_in_failures WHERE key = ?"
            rows = [(key, db.execute(sql, (key,)).fetchone()) for key in wanted]
            return [(key, int(row[0]), float(row[1])) for key, row in rows if row is not None]

        waits = [0.0]
        for key, failures, last_at in read(self.path, look):
            if now - last_at >= FORGET_AFTER:
                continue
            delay = delay_after(failures, FREE_FAILURES[key.split(":", 1)[0]])
            waits.append(last_at + delay - now)
        return max(waits)

    def failed(self, keys: Iterable[str]) -> None:
        now = self._clock()
        stale = now - FORGET_AFTER
        wanted = list(keys)

        def count(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM sign_in_failures WHERE last_at <= ?", (stale,))
            for key in wanted:
                db.execute(
                    "INSERT INTO sign_in_failures (key, failures, last_at) VALUES (?, 1, ?)"
                    " ON CONFLICT (key) DO UPDATE SET last_at = excluded.last_at,"
                    " failures = CASE WHEN last_at <= ? THEN 1 ELSE failures + 1 END",
                    (key, now, stale),
                )

        write(self.path, count)

    def succeeded(self, key: str) -> None:
        write(
            self.path, lambda db: db.execute("DELETE FROM sign_in_failures WHERE key = ?", (key,))
        )
