"""What the store keeps of people: reviewer (and submit) accounts and their web sessions.

The rules (names, passwords, argon2, the throttle's waits, session lifetimes) live in
``gateway.accounts`` and ``gateway.web.sessions``; these are the records they read and write.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    REVIEWER = "reviewer"
    ADMIN = "admin"
    SUBMIT = "submit"  # submits mail by SMTP AUTH (RFC 4954); never signs in to the web UI


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


@dataclass(frozen=True)
class SessionRecord:
    key: str  # SHA-256 of the session id, hex: the id itself is never stored
    user: User
    csrf: str
    created_at: float
    seen_at: float
    flash: str = ""  # a one-time message for the next page, JSON; "" for none


@dataclass(frozen=True)
class NewSession:
    key: str
    user: str  # the account's name
    csrf: str
    client: str  # the address it signed in from
    at: float
