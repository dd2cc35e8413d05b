"""The audit trail's events of the delivery queue: flagged mail queued for direct delivery,
and what became of each recipient. Metadata only, as in ``events``; the entry's queue id is in
the data (queue entries are not holds)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from gateway.audit.events import GATEWAY
from gateway.store import AuditRecord, NewQueued, Queued


def queued(new: NewQueued) -> AuditRecord:
    """Flagged mail accepted for direct delivery; the store adds the queue id."""
    return AuditRecord(
        "queued",
        "",
        GATEWAY,
        {
            "message_id": new.message_id,
            "sender": new.sender,
            "recipients": [r.address for r in new.recipients],
            "findings": list(new.findings),
            "requiretls": new.requiretls,
        },
    )


def delivered(entry: Queued, domain: str, recipients: Sequence[str]) -> AuditRecord:
    """An MX host of ``domain`` took these recipients (written with the relay journal). Its
    reply, host and TLS are in each copy's ``delivered`` proof, written beside it."""
    return AuditRecord(
        "queue-delivered",
        "",
        GATEWAY,
        {
            "queue_id": entry.id,
            "message_id": entry.message_id,
            "domain": domain,
            "recipients": list(recipients),
        },
    )


def failed(entry: Queued, refused: Mapping[str, str], gave_up: bool) -> AuditRecord:
    """Not delivered, for good: refused (5xx) or, unflagged, given up; the sender is told."""
    return AuditRecord(
        "queue-failed",
        "",
        GATEWAY,
        {
            "queue_id": entry.id,
            "message_id": entry.message_id,
            "recipients": dict(refused),
            "gave_up": gave_up,
        },
    )


def purged(entry: Queued, by: str, reason: str, recipients: Sequence[str]) -> AuditRecord:
    """An operator took the entry out of the queue (`gateway queue purge`)."""
    return AuditRecord(
        "queue-purged",
        "",
        by,
        {
            "queue_id": entry.id,
            "message_id": entry.message_id,
            "recipients": list(recipients),
            "reason": reason,
        },
    )
