"""What the store keeps: held messages and their recipients, notices, audit records.

Plain frozen values, the same for every backend; how they are laid out on disk is each
backend's business (``gateway.store.sqlite``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from gateway.store.assessment import HoldFacts


class Status(StrEnum):
    HELD = "held"
    RELEASING = "releasing"  # release decided; the upstream has not yet taken every recipient
    RELEASED = "released"
    REJECTED = "rejected"
    EXPIRED = "expired"
    LINKED = "linked"  # sent by secure link: the recipients read it on the portal


DECIDED = frozenset({Status.RELEASED, Status.REJECTED, Status.EXPIRED, Status.LINKED})


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
    # The recipients the relay journal says the upstream took already (written by an earlier
    # version, which journalled a notice before its mark), read with the claim: not sent to
    # again.
    taken: frozenset[str] = frozenset()


def notice_key(notice_id: str) -> str:
    """The relay journal's key for a notice's recipients (the same on every backend)."""
    return f"notice:{notice_id}"


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
    facts: HoldFacts = field(default_factory=HoldFacts)  # why each recipient domain failed
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
    facts: HoldFacts = field(default_factory=HoldFacts)
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
