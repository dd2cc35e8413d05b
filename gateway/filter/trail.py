"""What the filter writes to the audit trail for checked mail, and the subject it may show in
notices ([notify] include_subject): flagged mail's arrival, and why each recipient it relayed
to was secure. Unflagged mail is logged, not audited."""

from __future__ import annotations

from collections.abc import Sequence

from gateway.audit import events as audit
from gateway.core import headers
from gateway.filter.message import Work, client_text
from gateway.store import AuditRecord, schema
from gateway.store.assessment import AssessmentRecord


def subject_of(work: Work) -> str:
    """The decoded Subject: (at most 200 characters; "" when it cannot be decoded)."""
    try:
        return headers.decode_words(work.parsed.first("Subject") or "")[:200]
    except headers.HeaderDecodeError:
        return ""


def received(work: Work) -> list[AuditRecord]:
    """Flagged mail's arrival, for the trail."""
    if not work.findings:
        return []
    return [
        audit.received(
            work.queue_id,
            work.parsed.first("Message-ID") or "",
            work.incoming.sender,
            [r.address for r in work.incoming.recipients],
            client_text(work.incoming),
            [str(f) for f in work.findings],
        )
    ]


def relayed(work: Work, accepted: Sequence[str], first: bool) -> list[AuditRecord]:
    """For checked mail, why each recipient it relayed to was secure; with ``first``
    (nothing was held before), flagged mail's arrival goes first."""
    if not work.assessments:
        return []
    arrival = received(work) if first else []
    took = set(accepted)  # one look-up per recipient, not a scan of the accepted list
    # Keyed by domain (as the entry is): one record per domain, however many recipients.
    records: dict[str, AssessmentRecord] = {}
    for d in work.decisions:
        if d.recipient in took and d.domain in work.assessments and d.domain not in records:
            records[d.domain] = work.assessments[d.domain].record
    facts = schema.assessments_json(list(records.values()))
    return [
        *arrival,
        audit.relayed(
            work.queue_id,
            work.parsed.first("Message-ID") or "",
            work.incoming.sender,
            accepted,
            [str(f) for f in work.findings],
            facts,
        ),
    ]
