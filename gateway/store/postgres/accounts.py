"""Reviewer accounts, the sign-in throttle and web sessions in the shared database, so that a
reviewer signed in on one node keeps working when the next request reaches another, and an
attacker's failures count the same on every node. The embedded twin is
``gateway.store.sqlite.accounts``; the callers (``gateway.accounts``, ``gateway.web.sessions``)
are synchronous and already off the event loop, hence ``SyncDatabase``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from psycopg import Connection

from gateway.store.accounts import NewSession, SessionRecord, User
from gateway.store.postgres.database import SyncDatabase
from gateway.store.postgres.tables import text_value
from gateway.store.sqlite.accounts import user_from_row

# The advisory lock class of the sign-in throttle (beside database.GATEWAY_LOCKS and
# FETCH_LOCKS): one lock a throttle key, hashtext(key) the second key.
SIGN_IN_LOCKS = 0x5349

_USER = "u.name, u.role, u.disabled, u.created_at, u.password_at, u.signed_in_at"
_USERS = f"SELECT {_USER}, u.hash FROM users u"  # noqa: S608
_SESSION = (
    f"SELECT s.key, s.csrf, s.created_at, s.seen_at, s.flash, {_USER}"  # noqa: S608
    " FROM sessions s JOIN users u ON u.name = s.user_name WHERE s.key = %s"
)


class PgAccounts:
    """Implements ``AccountStore``: ``UserRecords``, ``SignInFailures`` and ``SessionRecords``."""

    def __init__(self, db: SyncDatabase) -> None:
        self._db = db

    def close(self) -> None:
        self._db.close()

    def _rows(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        with self._db.transaction() as conn:
            return conn.execute(sql, params).fetchall()

    def _change(self, sql: str, params: Sequence[object]) -> int:
        with self._db.transaction() as conn:
            return conn.execute(sql, params).rowcount

    # --- users -----------------------------------------------------------------------------

    def user(self, name: str) -> tuple[User, str] | None:
        rows = self._rows(f"{_USERS} WHERE u.name = %s", (name,))
        return (user_from_row(rows[0][:-1]), str(rows[0][-1])) if rows else None

    def users(self) -> list[User]:
        return [user_from_row(row[:-1]) for row in self._rows(f"{_USERS} ORDER BY u.name")]

    def add_user(self, user: User, digest: str) -> bool:
        """False when the name is taken (by this node or another: the key decides)."""
        return (
            self._change(
                "INSERT INTO users (name, role, hash, created_at, password_at)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (name) DO NOTHING",
                (user.name, user.role.value, digest, user.created_at, user.password_at),
            )
            == 1
        )

    def set_password(self, name: str, digest: str, at: float) -> bool:
        sql = "UPDATE users SET hash = %s, password_at = %s WHERE name = %s"
        return self._change(sql, (digest, at, name)) == 1

    def set_disabled(self, name: str, disabled: bool) -> bool:
        return self._change("UPDATE users SET disabled = %s WHERE name = %s", (disabled, name)) == 1

    def signed_in(self, name: str, at: float, digest: str) -> None:
        sql = "UPDATE users SET signed_in_at = %s, hash = %s WHERE name = %s"
        self._change(sql, (at, digest, name))

    # --- the sign-in throttle --------------------------------------------------------------

    def failures(self, keys: Sequence[str]) -> list[tuple[str, int, float]]:
        with self._db.transaction() as conn:
            return _failures(conn, keys)

    def add_failure(self, keys: Sequence[str], at: float, forget_before: float) -> None:
        with self._db.transaction() as conn:
            _count_failure(conn, keys, at, forget_before)

    def clear_failures(self, key: str) -> None:
        self._change("DELETE FROM sign_in_failures WHERE key = %s", (key,))

    def begin_attempt(
        self,
        keys: Sequence[str],
        at: float,
        forget_before: float,
        wait: Callable[[list[tuple[str, int, float]]], float],
    ) -> float:
        """In one transaction holding the keys' advisory locks: ``wait`` of their failures;
        when it is 0, one more failure counted under each key before anyone checks the
        password. Attempts on every node queue on the locks, so none sees a count another
        has not recorded yet.

        An advisory lock rather than ``SELECT ... FOR UPDATE``: the first failures of a name
        have no row to lock yet, and two nodes would both find nothing."""
        with self._db.transaction() as conn:
            _lock(conn, keys)
            due = wait(_failures(conn, keys))
            if due <= 0:
                _count_failure(conn, keys, at, forget_before)
            return due

    def end_attempt(self, clear: Sequence[str], refund: Sequence[str]) -> None:
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM sign_in_failures WHERE key = ANY(%s)", (list(clear),))
            conn.execute(
                "UPDATE sign_in_failures SET failures = failures - 1 WHERE key = ANY(%s)",
                (list(refund),),
            )
            conn.execute("DELETE FROM sign_in_failures WHERE failures <= 0")

    # --- web sessions ----------------------------------------------------------------------

    def add_session(self, new: NewSession, replacing: str, stale: tuple[float, float]) -> None:
        with self._db.transaction() as conn:
            if replacing:
                conn.execute("DELETE FROM sessions WHERE key = %s", (replacing,))
            conn.execute("DELETE FROM sessions WHERE created_at < %s OR seen_at < %s", stale)
            conn.execute(
                "INSERT INTO sessions (key, user_name, csrf, client, created_at, seen_at)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                (new.key, new.user, new.csrf, text_value(new.client), new.at, new.at),
            )

    def session(self, key: str) -> SessionRecord | None:
        rows = self._rows(_SESSION, (key,))
        if not rows:
            return None
        key, csrf, created_at, seen_at, flash, *account = rows[0]
        return SessionRecord(key, user_from_row(account), csrf, created_at, seen_at, flash)

    def touch_session(self, key: str, at: float, clear_flash: bool = False) -> None:
        sql = (
            "UPDATE sessions SET seen_at = %s, flash = '' WHERE key = %s"
            if clear_flash
            else "UPDATE sessions SET seen_at = %s WHERE key = %s"
        )
        self._change(sql, (at, key))

    def set_flash(self, key: str, flash: str) -> None:
        self._change("UPDATE sessions SET flash = %s WHERE key = %s", (text_value(flash), key))

    def end_session(self, key: str) -> None:
        self._change("DELETE FROM sessions WHERE key = %s", (key,))

    def end_sessions(self, user: str, keep: str = "") -> int:
        """End every session of ``user`` but the one with key ``keep``; how many ended."""
        sql = "DELETE FROM sessions WHERE user_name = %s AND key != %s"
        return self._change(sql, (user, keep))


def _lock(conn: Connection[Any], keys: Sequence[str]) -> None:
    """The keys' locks, in the order of their hashes: two attempts locking overlapping keys
    never wait for each other in a circle (a deadlock PostgreSQL would have to break)."""
    hashes = conn.execute(
        "SELECT DISTINCT hashtext(k) FROM unnest(%s::text[]) AS k ORDER BY 1", (list(keys),)
    ).fetchall()
    for (hashed,) in hashes:
        conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (SIGN_IN_LOCKS, hashed))


def _failures(conn: Connection[Any], keys: Sequence[str]) -> list[tuple[str, int, float]]:
    rows = conn.execute(
        "SELECT key, failures, last_at FROM sign_in_failures WHERE key = ANY(%s)", (list(keys),)
    ).fetchall()
    found = {str(key): (int(failures), float(last_at)) for key, failures, last_at in rows}
    return [(key, *found[key]) for key in keys if key in found]


def _count_failure(
    conn: Connection[Any], keys: Sequence[str], at: float, forget_before: float
) -> None:
    conn.execute("DELETE FROM sign_in_failures WHERE last_at <= %s", (forget_before,))
    for key in keys:
        conn.execute(
            "INSERT INTO sign_in_failures AS f (key, failures, last_at) VALUES (%s, 1, %s)"
            " ON CONFLICT (key) DO UPDATE SET last_at = excluded.last_at,"
            " failures = CASE WHEN f.last_at <= %s THEN 1 ELSE f.failures + 1 END",
            (key, at, forget_before),
        )
