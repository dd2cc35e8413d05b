"""What the filter hands the delivery queue ([delivery] direct) for the recipients it
delivers itself: the message, where it came from, and the facts its verdicts rested on (for
a hold, should delivery give up)."""

from __future__ import annotations

from collections.abc import Sequence

from gateway.core.model import RecipientDecision
from gateway.filter.message import (
    Work,
    client_text,
    domain_or_none,
    protocol,
    summary,
    trace_comment,
)
from gateway.store import HoldFacts, NewQueued, QueuedRecipient


def queue_entry(work: Work, decisions: Sequence[RecipientDecision], subject: str) -> NewQueued:
    """The entry for ``decisions``, keyed on the message: an MTA's retry finds it again."""
    options = {r.address: r.options for r in work.incoming.recipients}
    domains = {d.domain for d in decisions}
    return NewQueued(
        key=f"{work.key}:queue",
        sender=work.incoming.sender,
        recipients=tuple(
            QueuedRecipient(
                d.recipient,
                d.domain or domain_or_none(d.recipient) or "",
                options.get(d.recipient, ()),
            )
            for d in decisions
        ),
        mail_options=work.incoming.mail_options,
        message=work.data,
        client=work.incoming.client_ip,
        helo=work.incoming.helo,
        protocol=protocol(work.incoming),
        message_id=work.parsed.first("Message-ID") or "",
        findings=tuple(str(f) for f in work.findings),
        facts=HoldFacts(
            tuple(a.record for domain, a in work.assessments.items() if domain in domains)
        ),
        subject=subject,
        summary=summary(work, decisions),
        smtputf8=work.incoming.smtputf8,
        flagged=bool(work.findings),
        # RFC 8689 §4.1: the client asked that every hop be authenticated TLS.
        requiretls=work.incoming.requiretls,
        **_forwarded(work),
    )


def _forwarded(work: Work) -> dict[str, str]:
    """What a hold made when delivery gives up, and the Received: field, say of the client
    beyond its address and HELO name: the same as for a message held or relayed at once."""
    return {
        "sent_from": client_text(work.incoming),
        "client_name": work.incoming.client_name,
        "trace_comment": trace_comment(work.incoming),
    }
