"""Sessions: a random id in a signed cookie, the session itself on the server.

The cookie holds only the session id, signed with the web key (itsdangerous), HttpOnly,
SameSite=Strict, and Secure (with the ``__Host-`` prefix) when the page came over HTTPS. The
server keeps a row per session in ``users.sqlite3`` under the SHA-256 of the id, with the
account, its CSRF token and when it was made and last used, so that signing out, disabling an
account or changing its password ends its sessions at once, also from the command line.

A session ends ``[web] session_max_age`` after sign-in or ``session_idle_timeout`` after the last
request. Signing in always makes a new id (no session fixation), and drops the old one.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from itsdangerous import BadSignature, URLSafeTimedSerializer

from gateway.accounts.users import User, user_from_row
from gateway.store.sqlite.accounts import write

SIGNIN_FORM_AGE = 3600  # seconds a sign-in form stays valid
_TOUCH_EVERY = 30.0  # seconds: don't write on every request to note that it was used

_LOAD = (
    "SELECT s.key, s.csrf, s.created_at, s.seen_at, s.flash,"
    " u.name, u.role, u.disabled, u.created_at, u.password_at, u.signed_in_at"
    " FROM sessions s JOIN users u ON u.name = s.user WHERE s.key = ?"
)


@dataclass(frozen=True)
class Flash:
    kind: str  # "ok" or "error"
    text: str


@dataclass(frozen=True)
class Session:
    key: str
    user: User
    csrf: str
    created_at: float
    flash: Flash | None = None


def _key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class Sessions:
    def __init__(
        self,
        path: Path,
        secret: str,
        max_age: float,
        idle: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.max_age = max_age
        self.idle = idle
        self._clock = clock
        self._cookie = URLSafeTimedSerializer(secret, salt="gateway.web.session")
        self._signin = URLSafeTimedSerializer(secret, salt="gateway.web.signin")

    # --- the cookie ------------------------------------------------------------------------

    def cookie_value(self, session_id: str) -> str:
        return self._cookie.dumps(session_id)

    def session_id(self, cookie: str | None) -> str | None:
        if not cookie:
            return None
        try:
            value = self._cookie.loads(cookie, max_age=int(self.max_age))
        except BadSignature:  # also SignatureExpired
            return None
        return value if isinstance(value, str) else None

    def signin_cookie(self, token: str) -> str:
        """Before sign-in there is no session: the sign-in form's CSRF token travels in a
        signed cookie of its own and must match the form's (a signed double submit)."""
        return self._signin.dumps(token)

    def signin_token(self, cookie: str | None) -> str | None:
        if not cookie:
            return None
        try:
            value = self._signin.loads(cookie, max_age=SIGNIN_FORM_AGE)
        except BadSignature:
            return None
        return value if isinstance(value, str) else None

    # --- the rows --------------------------------------------------------------------------

    def create(self, user: str, client: str, replacing: str | None = None) -> str:
        """A new session for ``user``; returns its id (for the cookie). ``replacing``: the id
        the browser had before, dropped."""
        session_id = secrets.token_urlsafe(32)
        now = self._clock()

        def insert(db: sqlite3.Connection) -> None:
            if replacing:
                db.execute("DELETE FROM sessions WHERE key = ?", (_key(replacing),))
            db.execute(
                "DELETE FROM sessions WHERE created_at < ? OR seen_at < ?",
                (now - self.max_age, now - self.idle),
            )
            db.execute(
                "INSERT INTO sessions (key, user, csrf, client, created_at, seen_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (_key(session_id), user, secrets.token_urlsafe(32), client, now, now),
            )

        write(self.path, insert)
        return session_id

    def load(self, session_id: str | None, take_flash: bool = False) -> Session | None:
        """The live session of an enabled account, or None. Marks it used; with ``take_flash``
        also takes its one-time message."""
        if not session_id:
            return None
        key = _key(session_id)
        now = self._clock()
        return write(self.path, lambda db: self._load(db, key, now, take_flash))

    def _load(
        self, db: sqlite3.Connection, key: str, now: float, take_flash: bool
    ) -> Session | None:
        row = db.execute(_LOAD, (key,)).fetchone()
        if row is None:
            return None
        _, csrf, created_at, seen_at, flash_json, *account = row
        user = user_from_row(account)
        if user.disabled or now - created_at >= self.max_age or now - seen_at >= self.idle:
            db.execute("DELETE FROM sessions WHERE key = ?", (key,))
            return None
        flash = None
        if take_flash and flash_json:
            data = json.loads(flash_json)
            flash = Flash(str(data["kind"]), str(data["text"]))
            db.execute("UPDATE sessions SET flash = '', seen_at = ? WHERE key = ?", (now, key))
        elif now - seen_at >= _TOUCH_EVERY:
            db.execute("UPDATE sessions SET seen_at = ? WHERE key = ?", (now, key))
        return Session(key, user, csrf, created_at, flash)

    def flash(self, session: Session, kind: str, text: str) -> None:
        """A message for the next page this session sees ("released; sent to ...")."""
        values = (json.dumps({"kind": kind, "text": text}), session.key)
        write(
            self.path, lambda db: db.execute("UPDATE sessions SET flash = ? WHERE key = ?", values)
        )

    def end(self, session: Session) -> None:
        write(
            self.path, lambda db: db.execute("DELETE FROM sessions WHERE key = ?", (session.key,))
        )

    def end_all(self, user: str, keep: Session | None = None) -> int:
        """End every session of ``user`` (but ``keep``): after a password change or when the
        account is disabled."""
        values = (user, keep.key if keep else "")
        sql = "DELETE FROM sessions WHERE user = ? AND key != ?"
        return write(self.path, lambda db: int(db.execute(sql, values).rowcount))


def end_sessions_of(path: Path, user: str) -> int:
    """For the command line, which has no web key: end every session of ``user``."""
    sql = "DELETE FROM sessions WHERE user = ?"
    return write(path, lambda db: int(db.execute(sql, (user,)).rowcount))
