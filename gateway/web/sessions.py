"""Sessions: a random id in a signed cookie, the session itself on the server.

The cookie holds only the session id, signed with the web key (itsdangerous), HttpOnly,
SameSite=Strict, and Secure (with the ``__Host-`` prefix) when the page came over HTTPS. The
server keeps a row per session in the account store (``users.sqlite3``, or the shared database
on PostgreSQL, so that any node serves any session) under the SHA-256 of the id, with the
account, its CSRF token and when it was made and last used, so that signing out, disabling an
account or changing its password ends its sessions at once, also from the command line.

A session ends ``[web] session_max_age`` after sign-in or ``session_idle_timeout`` after the last
request. Signing in always makes a new id (no session fixation), and drops the old one.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer

from gateway.accounts.users import User
from gateway.store.accounts import NewSession
from gateway.store.accountstore import SessionRecords

SIGNIN_FORM_AGE = 3600  # seconds a sign-in form stays valid
_TOUCH_EVERY = 30.0  # seconds: don't write on every request to note that it was used


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
        records: SessionRecords,
        secret: str,
        max_age: float,
        idle: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._records = records
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
        new = NewSession(_key(session_id), user, secrets.token_urlsafe(32), client, now)
        stale = (now - self.max_age, now - self.idle)
        self._records.add_session(new, _key(replacing) if replacing else "", stale)
        return session_id

    def load(self, session_id: str | None, take_flash: bool = False) -> Session | None:
        """The live session of an enabled account, or None. Marks it used; with ``take_flash``
        also takes its one-time message."""
        if not session_id:
            return None
        now = self._clock()
        found = self._records.session(_key(session_id))
        if found is None:
            return None
        if (
            found.user.disabled
            or now - found.created_at >= self.max_age
            or now - found.seen_at >= self.idle
        ):
            self._records.end_session(found.key)
            return None
        flash = None
        if take_flash and found.flash:
            data = json.loads(found.flash)
            flash = Flash(str(data["kind"]), str(data["text"]))
            self._records.touch_session(found.key, now, clear_flash=True)
        elif now - found.seen_at >= _TOUCH_EVERY:
            self._records.touch_session(found.key, now)
        return Session(found.key, found.user, found.csrf, found.created_at, flash)

    def flash(self, session: Session, kind: str, text: str) -> None:
        """A message for the next page this session sees ("released; sent to ...")."""
        self._records.set_flash(session.key, json.dumps({"kind": kind, "text": text}))

    def end(self, session: Session) -> None:
        self._records.end_session(session.key)

    def end_all(self, user: str, keep: Session | None = None) -> int:
        """End every session of ``user`` (but ``keep``): after a password change or when the
        account is disabled."""
        return self._records.end_sessions(user, keep.key if keep else "")
