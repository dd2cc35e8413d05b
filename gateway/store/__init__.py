"""The store: held messages (encrypted), their metadata and state, the relay journal, the audit
trail and the outbox of notices.

A narrow interface so that a PostgreSQL implementation can serve several gateway nodes later;
``SqliteStore`` is the embedded default (SQLite in WAL mode plus one encrypted file a hold).
Every state change commits together with its audit entries and notices, so the trail never
misses an event that happened, nor records one that did not.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from gateway.core.auditchain import Entry


class Status(StrEnum):
    HELD = "held"
    RELEASING = "releasing"  # release decided; the upstream has not yet taken every recipient
    RELEASED = "released"
    REJECTED = "rejected"
    EXPIRED = "expired"


@dataclass(frozen=True)
class HeldRecipient:
    address: str
    domain: str
    reasons: tuple[str, ...]
    options: tuple[str, ...] = ()  # RCPT parameters to pass on at release (NOTIFY, ORCPT)


@dataclass(frozen=True)
class AuditRecord:
    """An event to append to the trail; the store numbers and chains it."""

    event: str
    hold_id: str
    actor: str
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NewNotice:
    kind: str  # held, held-reviewers, released, rejected, expired, escalated
    hold_id: str
    sender: str  # envelope sender of the notice
    recipients: tuple[str, ...]
    message: bytes


@dataclass(frozen=True)
class Notice:
    id: str
    kind: str
    hold_id: str
    sender: str
    recipients: tuple[str, ...]
    message: bytes
    attempts: int
    created_at: float


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
    subject: str = ""  # kept only when notices may show it ([notify] include_subject)


@dataclass(frozen=True)
class Hold:
    id: str
    key: str
    status: Status
    created_at: float
    sender: str
    recipients: tuple[HeldRecipient, ...]
    mail_options: tuple[str, ...]
    size: int
    client: str
    message_id: str
    findings: tuple[str, ...]
    facts: dict[str, Any]
    subject: str = ""
    decided_at: float | None = None
    decided_by: str = ""
    decision: str = ""  # the rationale of a release, the reason of a reject
    escalated_at: float | None = None
    purged_at: float | None = None
    delivered: tuple[str, ...] = ()  # recipients the upstream took on release
    refused: dict[str, str] = field(default_factory=dict)  # recipient -> upstream reply
    last_error: str = ""
    attempt_at: float | None = None  # when a release delivery was last started
    attempt_by: str = ""  # which process started it (host:pid)

    @property
    def reasons(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r for rcpt in self.recipients for r in rcpt.reasons))


# Given the new hold, the audit entries and notices to commit with it.
Consequences = Callable[["Hold"], tuple[Sequence[AuditRecord], Sequence[NewNotice]]]


class HoldStore(Protocol):
    async def hold(self, new: NewHold, then: Consequences | None = None) -> tuple[Hold, bool]:
        """Durably store the message (encrypted, fsync'd) and its metadata, with what ``then``
        makes of the new hold, in one transaction. Returns the hold and whether it was created
        now (False: an earlier delivery of the same message made it; ``then`` is not run)."""
        ...

    async def get(self, hold_id: str) -> Hold | None: ...

    async def message(self, hold_id: str) -> bytes:
        """The decrypted held message; KeyError if its body was purged."""
        ...

    async def holds(self, status: Status | None = None) -> Sequence[Hold]: ...

    async def update(
        self,
        hold_id: str,
        expect: frozenset[Status],
        changes: Mapping[str, Any],
        audit: Sequence[AuditRecord] = (),
        notices: Sequence[NewNotice] = (),
    ) -> Hold | None:
        """Change a hold if its status is one of ``expect`` (compare and set); None if not."""
        ...

    async def claim(
        self, hold_id: str, owner: str, now: float, stale_before: float, dead_owner: str = ""
    ) -> Hold | None:
        """Take the right to deliver a release: only one process relays a hold at a time.
        Succeeds when nobody holds the claim, it is stale, it is ours, or its owner is dead."""
        ...

    async def purge_body(self, hold_id: str, audit: Sequence[AuditRecord] = ()) -> bool: ...

    async def relayed(self, key: str) -> frozenset[str]:
        """Recipients of this message already accepted by the upstream (relay journal)."""
        ...

    async def record_relayed(
        self, key: str, recipients: Sequence[str], audit: Sequence[AuditRecord] = ()
    ) -> None: ...

    async def append_audit(self, audit: Sequence[AuditRecord]) -> None: ...

    async def audit_entries(self, since: float | None = None) -> Sequence[Entry]: ...

    async def audit_head(self) -> tuple[int, str] | None:
        """The newest entry's number and hash."""
        ...

    async def due_notices(self, now: float, limit: int = 50) -> Sequence[Notice]: ...

    async def notice_sent(self, notice_id: str, audit: Sequence[AuditRecord] = ()) -> None: ...

    async def notice_failed(self, notice_id: str, error: str, retry_at: float | None) -> None: ...

    async def close(self) -> None: ...
