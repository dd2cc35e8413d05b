"""The hold the filter writes for recipients it may not relay (its policy's, or those the
upstream refused): the message, the recipients with their reasons and DSN options, and the
facts the verdicts rested on, keyed on the message so a retry after a 4xx finds it again."""

from __future__ import annotations

from collections.abc import Sequence

from gateway.core.model import Action, RecipientDecision
from gateway.delivery.transport import Reply
from gateway.filter.message import Work, client_text
from gateway.store import HeldRecipient, HoldFacts, NewHold


def new_hold(
    work: Work,
    decisions: Sequence[RecipientDecision],
    kind: str,
    subject: str,
    refusals: dict[str, Reply] | None = None,
) -> NewHold:
    """The hold of ``decisions``; ``kind`` ("policy", "refused") keeps the two apart."""
    options = {r.address: r.options for r in work.incoming.recipients}
    held_domains = {d.domain for d in decisions}  # a set: one look-up per domain, not a scan
    facts = HoldFacts(
        tuple(
            assessment.record
            for domain, assessment in work.assessments.items()
            if domain in held_domains
        ),
        {a: str(r) for a, r in (refusals or {}).items()},
    )
    return NewHold(
        key=f"{work.key}:{kind}",
        sender=work.incoming.sender,
        recipients=tuple(
            HeldRecipient(
                d.recipient,
                d.domain,
                tuple(r.value for r in d.reasons),
                options.get(d.recipient, ()),
            )
            for d in decisions
        ),
        mail_options=work.incoming.mail_options,
        message=work.data,
        client=client_text(work.incoming),
        message_id=work.parsed.first("Message-ID") or "",
        findings=tuple(str(f) for f in work.findings),
        facts=facts,
        subject=subject,
    )


def relayed_beside(work: Work, decisions: Sequence[RecipientDecision]) -> list[str]:
    """The recipients relayed while ``decisions`` are held (the held notice names them)."""
    held_here = {d.recipient for d in decisions}
    return [
        d.recipient
        for d in work.decisions
        if d.action is Action.RELAY and d.recipient not in held_here
    ]
