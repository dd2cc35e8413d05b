"""The store's interfaces for accounts: reviewer and admin accounts, the sign-in throttle's
failures, and web sessions, one protocol each and ``AccountStore`` for the three.

Apart from ``protocols`` because these are synchronous, where every other interface of the
store is a coroutine: their callers are already off the event loop (a worker thread of the web
UI, where argon2 runs; the command line). The records they carry are ``accounts``'s.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from gateway.store.accounts import NewSession, SessionRecord, User


class UserRecords(Protocol):
    """Reviewer and admin accounts with their argon2 hashes; disabled, never deleted."""

    def user(self, name: str) -> tuple[User, str] | None:
        """The account and its password hash."""
        ...

    def users(self) -> list[User]: ...

    def add_user(self, user: User, digest: str) -> bool:
        """False when the name is taken."""
        ...

    def set_password(self, name: str, digest: str, at: float) -> bool: ...

    def set_disabled(self, name: str, disabled: bool) -> bool: ...

    def signed_in(self, name: str, at: float, digest: str) -> None: ...


class SignInFailures(Protocol):
    """Failed sign-ins in a row, per account name and per client address."""

    def failures(self, keys: Sequence[str]) -> list[tuple[str, int, float]]:
        """(key, failures in a row, when the last was) for each key that has failures."""
        ...

    def add_failure(self, keys: Sequence[str], at: float, forget_before: float) -> None: ...

    def clear_failures(self, key: str) -> None: ...

    def begin_attempt(
        self,
        keys: Sequence[str],
        at: float,
        forget_before: float,
        wait: Callable[[list[tuple[str, int, float]]], float],
    ) -> float:
        """Atomically: the ``wait`` of the keys' failures, and when it is 0 one more failure
        counted under each key."""
        ...

    def end_attempt(self, clear: Sequence[str], refund: Sequence[str]) -> None:
        """Forget the failures under ``clear``; take back one under each of ``refund``."""
        ...


class SessionRecords(Protocol):
    """Web sessions, under the SHA-256 of their id."""

    def add_session(self, new: NewSession, replacing: str, stale: tuple[float, float]) -> None:
        """Store a new session; drop ``replacing`` (a key) and the stale sessions."""
        ...

    def session(self, key: str) -> SessionRecord | None: ...

    def touch_session(self, key: str, at: float, clear_flash: bool = False) -> None: ...

    def set_flash(self, key: str, flash: str) -> None: ...

    def end_session(self, key: str) -> None: ...

    def end_sessions(self, user: str, keep: str = "") -> int: ...


class AccountStore(UserRecords, SignInFailures, SessionRecords, Protocol):
    """Accounts, throttle and sessions: one file (one database) for the three."""
