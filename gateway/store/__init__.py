"""The hold store: held messages (encrypted), their metadata, and the relay journal.

A narrow interface so that a PostgreSQL implementation can serve several gateway nodes later;
``SqliteStore`` is the embedded default (SQLite in WAL mode plus one encrypted file a hold).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class HeldRecipient:
    address: str
    domain: str
    reasons: tuple[str, ...]
    options: tuple[str, ...] = ()  # RCPT parameters to pass on at release (NOTIFY, ORCPT)


@dataclass(frozen=True)
class NewHold:
    """What the filter hands the store; the store gives it an id and a time."""

    key: str  # idempotency key: the same message retried by the MTA maps to the same hold
    sender: str
    recipients: tuple[HeldRecipient, ...]
    mail_options: tuple[str, ...]
    message: bytes
    client: str
    message_id: str
    findings: tuple[str, ...]
    facts: dict[str, Any] = field(default_factory=dict)  # domain -> facts summary


@dataclass(frozen=True)
class Hold:
    id: str
    key: str
    status: str
    created_at: float
    sender: str
    recipients: tuple[HeldRecipient, ...]
    mail_options: tuple[str, ...]
    size: int
    client: str
    message_id: str
    findings: tuple[str, ...]
    facts: dict[str, Any]


class HoldStore(Protocol):
    async def hold(self, new: NewHold) -> tuple[Hold, bool]:
        """Durably store the message (encrypted, fsync'd) and its metadata; return the hold and
        whether it was created now (False: an earlier delivery of the same message made it)."""
        ...

    async def get(self, hold_id: str) -> Hold | None: ...

    async def message(self, hold_id: str) -> bytes:
        """The decrypted held message."""
        ...

    async def holds(self, status: str | None = None) -> Sequence[Hold]: ...

    async def relayed(self, key: str) -> frozenset[str]:
        """Recipients of this message already accepted by the upstream (relay journal)."""
        ...

    async def record_relayed(self, key: str, recipients: Sequence[str]) -> None: ...

    async def close(self) -> None: ...
