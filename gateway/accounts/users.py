"""Accounts for the review web UI, and the sign-in throttle.

Kept in an ``AccountStore``: on the embedded backend one SQLite file, ``<data_dir>/users.sqlite3``
(mode 0600: it holds password hashes); on PostgreSQL the shared database, so that every node
knows the same accounts and counts the same failures. An account
has a name, a role (``reviewer`` reviews held mail; ``admin`` also manages accounts; ``submit``
only submits mail by SMTP AUTH and cannot sign in to the web UI), an
argon2id password hash (argon2-cffi's defaults, RFC 9106) and a disabled flag; accounts are
disabled, never deleted, so the audit trail's names keep pointing at someone.

The throttle counts failed sign-ins per account name and per client address. After a few free
failures each further one doubles the wait before the next attempt is even checked, up to
``MAX_DELAY``; a success clears the account's count, and failures are forgotten ``FORGET_AFTER``
the last one. An attempt is counted before its password is checked, atomically with the look
at the wait, so parallel attempts cannot all slip through while the first is being checked.

Every call is synchronous: the web UI runs them in a worker thread (argon2 is meant to be
slow), the command line calls them directly. ``gateway.runtime.parts.open_accounts`` picks the
store.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from gateway.errors import UserError
from gateway.store.accounts import Role, User
from gateway.store.accountstore import AccountStore, SignInFailures

__all__ = [
    "FORGET_AFTER",
    "FREE_FAILURES",
    "MAX_DELAY",
    "MAX_PASSWORD",
    "MIN_PASSWORD",
    "USERS_DB",
    "Accounts",
    "Role",
    "Throttle",
    "User",
    "UserError",
    "check_password",
    "delay_after",
    "normalise_name",
    "throttle_keys",
]

USERS_DB = "users.sqlite3"
MIN_PASSWORD = 12
MAX_PASSWORD = 1024  # hashing a megabyte of "password" is a cheap way to burn our CPU
_NAME = re.compile(r"[a-z0-9][a-z0-9._@-]{0,63}\Z")

# Throttle: free failures, then 1 s, 2 s, 4 s, ... up to MAX_DELAY before the next attempt.
FREE_FAILURES = {"user": 3, "addr": 10}  # a school's staff may share one public address
MAX_DELAY = 900.0
FORGET_AFTER = 86400.0


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
    """The accounts in ``records``, which the throttle and the web sessions share. ``close``
    gives back what ``on_close`` releases (a PostgreSQL pool of this process's own)."""

    def __init__(
        self,
        records: AccountStore,
        clock: Callable[[], float] = time.time,
        hasher: PasswordHasher | None = None,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.records = records
        self._clock = clock
        self._hasher = hasher or PasswordHasher()  # argon2id, RFC 9106 low-memory profile
        self._dummy: str | None = None
        self._on_close = on_close

    def close(self) -> None:
        if self._on_close is not None:
            self._on_close()

    # --- reading -------------------------------------------------------------------------

    def get(self, name: str) -> User | None:
        try:
            folded = normalise_name(name)
        except UserError:
            return None
        found = self.records.user(folded)
        return found[0] if found else None

    def all(self) -> list[User]:
        return self.records.users()

    # --- changes -------------------------------------------------------------------------

    def add(self, name: str, role: Role | str, password: str) -> User:
        folded = normalise_name(name)
        check_password(password)
        try:
            role = Role(role)
        except ValueError as exc:
            raise UserError(f"{role!r} is not a role: reviewer, admin or submit") from exc
        digest = self._hasher.hash(password)
        now = self._clock()
        if not self.records.add_user(User(folded, role, False, now, now), digest):
            raise UserError(f"there is already an account {folded!r}")
        user = self.get(folded)
        assert user is not None
        return user

    def set_password(self, name: str, password: str) -> User:
        check_password(password)
        digest = self._hasher.hash(password)
        folded = normalise_name(name)
        return self._changed(folded, self.records.set_password(folded, digest, self._clock()))

    def set_disabled(self, name: str, disabled: bool) -> User:
        folded = normalise_name(name)
        return self._changed(folded, self.records.set_disabled(folded, disabled))

    def _changed(self, folded: str, changed: bool) -> User:
        user = self.get(folded) if changed else None
        if user is None:
            raise UserError(f"there is no account {folded!r}")
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
        found = self.records.user(folded) if folded else None
        if found is None:
            self._verify(self._dummy_hash(), password)
            return None, "unknown-account"
        user, digest = found
        if not self._verify(digest, password):
            return user, "wrong-password"
        if user.disabled:
            return user, "disabled"
        if self._hasher.check_needs_rehash(digest):  # the defaults grew stronger: follow them
            digest = self._hasher.hash(password)
        self.records.signed_in(folded, self._clock(), digest)
        return user, ""

    def password_is(self, name: str, password: str) -> bool:
        """Whether ``password`` is the account's (to confirm a change); no side effects."""
        try:
            folded = normalise_name(name)
        except UserError:
            return False
        found = self.records.user(folded)
        return self._verify(found[1] if found else self._dummy_hash(), password) and bool(found)

    def _verify(self, digest: str, password: str) -> bool:
        try:
            return self._hasher.verify(digest, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def _dummy_hash(self) -> str:
        if self._dummy is None:
            self._dummy = self._hasher.hash("not a password: a dummy for unknown names")
        return self._dummy


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
    """Sign-in attempts are counted before their password is checked (``attempt``), in the
    same write transaction that looks at the wait: a hundred attempts sent at once queue
    there, and only the free ones are checked."""

    def __init__(self, records: SignInFailures, clock: Callable[[], float] = time.time) -> None:
        self._records = records
        self._clock = clock

    def wait(self, keys: Iterable[str]) -> float:
        """Seconds before another attempt under any of ``keys`` may be checked (0: now)."""
        return self._wait(self._records.failures(list(keys)), self._clock())

    def attempt(self, keys: Iterable[str]) -> float:
        """0: the attempt is counted as a failure under every key, and its password may be
        checked now (``succeeded`` takes it back); else the seconds to wait, nothing
        counted."""
        now = self._clock()
        return self._records.begin_attempt(
            list(keys), now, now - FORGET_AFTER, lambda rows: self._wait(rows, now)
        )

    def failed(self, keys: Iterable[str]) -> None:
        now = self._clock()
        self._records.add_failure(list(keys), now, now - FORGET_AFTER)

    def succeeded(self, *keys: str) -> None:
        """The attempt counted under ``keys`` was right: the account's failures are forgotten,
        and the address gets its counted attempt back (a success is not a failure)."""
        users = [key for key in keys if key.startswith("user:")]
        others = [key for key in keys if not key.startswith("user:")]
        self._records.end_attempt(users, others)

    @staticmethod
    def _wait(rows: Iterable[tuple[str, int, float]], now: float) -> float:
        waits = [0.0]
        for key, failures, last_at in rows:
            if now - last_at >= FORGET_AFTER:
                continue
            delay = delay_after(failures, FREE_FAILURES[key.split(":", 1)[0]])
            waits.append(last_at + delay - now)
        return max(waits)
