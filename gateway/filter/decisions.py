"""The decisions of a checked message: every recipient domain assessed (each on its own facts
and allowlist match), the sender's domains checked, and one ``RecipientDecision`` per
recipient (``core.policy.decide_recipients``)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from typing import Protocol

from gateway.config.values import OnDnsError
from gateway.core import headers
from gateway.core.allowlist import Allowlist, MatchStatus
from gateway.core.model import Action, RecipientDecision
from gateway.core.policy import check_sender, decide_recipients, today_utc
from gateway.filter.message import Incoming, domain_or_none
from gateway.posture.assessment import Assessment


class PostureSource(Protocol):
    """What the filter asks of the posture stage: the recipient domains' assessments, and the
    allowlist (for the sender's domain)."""

    @property
    def allowlist(self) -> Allowlist: ...

    async def assess_all(
        self, domains: Sequence[str], allowlist: Allowlist | None = None
    ) -> list[Assessment]: ...


class Decisions:
    def __init__(
        self, posture: PostureSource, local_domains: frozenset[str], on_dns_error: OnDnsError
    ) -> None:
        self._posture = posture
        self._local_domains = local_domains
        self._on_temporary = Action.TEMPFAIL if on_dns_error is OnDnsError.TEMPFAIL else Action.HOLD

    async def decide(
        self, incoming: Incoming, parsed: headers.Headers
    ) -> tuple[tuple[RecipientDecision, ...], dict[str, Assessment]]:
        recipients = [(r.address, domain_or_none(r.address)) for r in incoming.recipients]
        # Each domain once, however many of its recipients the message has.
        domains = sorted({d for _, d in recipients if d is not None})
        # One list for the whole message, taken once: a reload (SIGHUP) while its domains are
        # assessed applies from the next message on, never to half of this one's recipients.
        allowlist = self._posture.allowlist
        results = await self._posture.assess_all(domains, allowlist)
        assessments = dict(zip(domains, results, strict=True))
        today = today_utc(time.time())
        sender = check_sender(
            sender_domains(incoming, parsed),
            lambda domain: self._sender_allowed(domain, allowlist, today),
        )
        verdicts = {d: a.verdict for d, a in assessments.items()}
        decisions = decide_recipients(recipients, verdicts, sender, self._on_temporary)
        return decisions, assessments

    def _sender_allowed(self, domain: str, allowlist: Allowlist, today: dt.date) -> bool:
        if domain in self._local_domains:
            return True
        return allowlist.match(domain, today).status is MatchStatus.ALLOWED


def sender_domains(incoming: Incoming, parsed: headers.Headers) -> list[str | None]:
    """The envelope sender (unless null) and every From: address must be allowed."""
    domains: list[str | None] = []
    if incoming.sender:
        domains.append(domain_or_none(incoming.sender))
    from_values = parsed.get_all("From")
    if len(from_values) != 1:
        return [*domains, None]  # RFC 5322 §3.6: exactly one From: field
    from_addresses = headers.addresses(from_values[0])
    if not from_addresses:
        return [*domains, None]
    domains.extend(domain_or_none(a) for a in from_addresses)
    return domains
