"""The filter: classify a message, decide per recipient, hold and relay, and choose the reply.

The reply keeps the promise of RFC 5321 §6.1: 250 only when every recipient is relayed or
durably held; 4xx when anything is left undone, so the sending MTA keeps the message and
retries; 5xx only for what retrying can never fix. Holds are written before the relay and are
idempotent, so a retry after a 4xx never makes a second hold, and a journal of what the
upstream accepted stops a retry from relaying a second copy.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from gateway import logs, metrics
from gateway.audit import events as audit
from gateway.config.settings import Settings
from gateway.config.values import OnDnsError, Scope
from gateway.core import classify, headers
from gateway.core.addresses import AddressError, address_domain, normalise_domain
from gateway.core.allowlist import MatchStatus
from gateway.core.model import Action, Reason, RecipientDecision, Transport
from gateway.core.policy import check_sender, decide_recipients, today_utc
from gateway.delivery.smarthost import (
    Recipient,
    Relay,
    RelayFailed,
    RelayResult,
    Reply,
    Transaction,
)
from gateway.posture import report
from gateway.posture.assessment import Assessment, Posture
from gateway.review.notices import Notices
from gateway.smtp.reply import SmtpReply
from gateway.store import AuditRecord, HeldRecipient, Hold, HoldStore, NewHold, NewNotice


@dataclass(frozen=True)
class Incoming:
    client_ip: str
    helo: str
    esmtp: bool
    sender: str  # "" for the null reverse-path
    mail_options: tuple[str, ...]
    recipients: tuple[Recipient, ...]
    data: bytes
    smtputf8: bool = False


TEMPFAIL_DNS = SmtpReply(451, "4.4.3", "Recipient security could not be verified; try later")
TEMPFAIL_STORE = SmtpReply(451, "4.3.0", "Could not store the message; try again later")
TEMPFAIL_UPSTREAM = SmtpReply(451, "4.4.1", "Upstream unavailable; try again later")


class Filter:
    def __init__(
        self,
        settings: Settings,
        posture: Posture,
        store: HoldStore,
        relay: Relay,
        hostname: str,
        on_hold: Callable[[], None] | None = None,
    ) -> None:
        self._settings = settings
        self._posture = posture
        self._store = store
        self._relay = relay
        self._hostname = hostname
        self._notices = Notices(settings.notify, settings.review, hostname)
        # Canonical, like the domains they are compared with ("School.Test." is school.test).
        self._local_domains = frozenset(normalise_domain(d) for d in settings.policy.local_domains)
        # Called after a new hold, so its notices go out now rather than at the next sweep.
        self._on_hold = on_hold
        c = settings.classify
        self._rules = classify.Rules.build(
            c.header, c.header_values, c.subject_markers, c.sensitivity_labels, c.body_keywords
        )
        self._log = logs.get("gateway.filter")

    async def handle(self, incoming: Incoming) -> SmtpReply:
        queue_id = secrets.token_hex(6)
        log = self._log.bind(queue_id=queue_id)
        data = headers.normalise_line_endings(incoming.data)
        parsed = headers.parse(data)
        findings = await self._classify(parsed, data)
        flagged = bool(findings)
        log.info(
            "message received",
            client=incoming.client_ip,
            sender=incoming.sender,
            recipients=[r.address for r in incoming.recipients],
            size=len(data),
            message_id=parsed.first("Message-ID") or "",
            flagged=flagged,
            findings=[str(f) for f in findings],
        )
        if flagged or self._settings.policy.scope is Scope.ALL:
            decisions, assessments = await self._decide(incoming, parsed)
        else:
            decisions = tuple(
                RecipientDecision(r.address, "", Action.RELAY) for r in incoming.recipients
            )
            assessments = {}
        for d in decisions:
            log.info(
                "recipient verdict",
                recipient=d.recipient,
                domain=d.domain,
                action=d.action.value,
                reasons=[r.value for r in d.reasons],
                transport=d.transport.label,
                checked=bool(assessments),
            )
        if assessments:
            for d in decisions:
                metrics.RECIPIENTS.labels(d.action.value).inc()
        if any(d.action is Action.TEMPFAIL for d in decisions):
            log.info("message temp-failed", reason="recipient posture undetermined")
            metrics.MESSAGES.labels("tempfailed").inc()
            return TEMPFAIL_DNS
        work = _Work(queue_id, incoming, data, parsed, findings, decisions, assessments)
        reply = await self._deliver(work, log)
        metrics.MESSAGES.labels(_outcome(reply, decisions)).inc()
        return reply

    async def _classify(self, parsed: headers.Headers, data: bytes) -> tuple[classify.Finding, ...]:
        findings = classify.classify_headers(parsed, self._rules)
        if findings or not self._rules.body_keywords:
            return findings
        c = self._settings.classify
        try:
            # CPU-bound MIME parse: off the event loop, bounded in size and time.
            return await asyncio.wait_for(
                asyncio.to_thread(
                    classify.scan_body, data, self._rules.body_keywords, c.body_scan_bytes
                ),
                c.body_scan_timeout,
            )
        except TimeoutError:
            return (classify.Finding("body-scan-timeout", "the body scan gave up: fail closed"),)
        except Exception:  # a body the parser chokes on must not let a message through
            return (classify.Finding("body-scan-failed", "the body could not be scanned"),)

    async def _decide(
        self, incoming: Incoming, parsed: headers.Headers
    ) -> tuple[tuple[RecipientDecision, ...], dict[str, Assessment]]:
        recipients = [(r.address, _domain_or_none(r.address)) for r in incoming.recipients]
        domains = sorted({d for _, d in recipients if d is not None})
        results = await asyncio.gather(*(self._posture.assess(d) for d in domains))
        assessments = dict(zip(domains, results, strict=True))
        sender = check_sender(self._sender_domains(incoming, parsed), self._sender_allowed)
        on_temporary = (
            Action.TEMPFAIL
            if self._settings.policy.on_dns_error is OnDnsError.TEMPFAIL
            else Action.HOLD
        )
        verdicts = {d: a.verdict for d, a in assessments.items()}
        return decide_recipients(recipients, verdicts, sender, on_temporary), assessments

    def _sender_domains(self, incoming: Incoming, parsed: headers.Headers) -> list[str | None]:
        """The envelope sender (unless null) and every From: address must be allowed."""
        domains: list[str | None] = []
        if incoming.sender:
            domains.append(_domain_or_none(incoming.sender))
        from_values = parsed.get_all("From")
        if len(from_values) != 1:
            return [*domains, None]  # RFC 5322 §3.6: exactly one From: field
        from_addresses = headers.addresses(from_values[0])
        if not from_addresses:
            return [*domains, None]
        domains.extend(_domain_or_none(a) for a in from_addresses)
        return domains

    def _sender_allowed(self, domain: str) -> bool:
        if domain in self._local_domains:
            return True
        today = today_utc(time.time())
        return self._posture.allowlist.match(domain, today).status is MatchStatus.ALLOWED

    async def _deliver(self, work: _Work, log: Any) -> SmtpReply:
        to_hold = [d for d in work.decisions if d.action is Action.HOLD]
        to_relay = [d for d in work.decisions if d.action is Action.RELAY]
        hold_id = ""
        if to_hold:
            try:
                hold_id = await self._hold(work, to_hold, "policy", log)
            except Exception:
                log.exception("hold failed")
                return TEMPFAIL_STORE
        if not to_relay:
            return SmtpReply(250, "2.0.0", f"Ok: held for review as {hold_id}")

        already = await self._store.relayed(work.key)
        pending = [d for d in to_relay if d.recipient not in already]
        result = RelayResult(accepted=[d.recipient for d in to_relay if d.recipient in already])
        if pending:
            try:
                sent = await self._relay.send(self._transaction(work, pending))
            except RelayFailed as exc:
                log.warning("relay failed", stage=exc.stage, upstream=str(exc.reply))
                if exc.temporary or not to_hold:
                    return _upstream_reply(exc.reply)
                sent = RelayResult(refused={d.recipient: exc.reply for d in pending})
            result.accepted += sent.accepted
            result.refused.update(sent.refused)
            if sent.accepted:
                log.info("relayed", recipients=sent.accepted, upstream=str(sent.reply or ""))
                await self._journal(work, sent.accepted, log)
        return await self._after_relay(work, to_hold, result, hold_id, log)

    async def _after_relay(
        self,
        work: _Work,
        to_hold: Sequence[RecipientDecision],
        result: RelayResult,
        hold_id: str,
        log: Any,
    ) -> SmtpReply:
        if not result.refused:
            held = f", held for review as {hold_id}" if hold_id else ""
            return SmtpReply(250, "2.0.0", f"Ok: relayed as {work.queue_id}{held}")
        log.warning("upstream refused", refused={a: str(r) for a, r in result.refused.items()})
        if not result.accepted and not to_hold:
            # Nothing was delivered or held: hand the upstream's answer back, so the sending
            # MTA retries (4xx) or bounces (5xx) exactly as it would have without us.
            replies = list(result.refused.values())
            worst = next((r for r in replies if r.temporary), replies[0])
            return _upstream_reply(worst)
        # Part of the message is delivered or held; the refused recipients must not be
        # dropped: hold them, with the upstream's words, for review and notice.
        refused = [
            RecipientDecision(
                address, _domain_or_none(address) or "", Action.HOLD, (Reason.UPSTREAM_REFUSED,)
            )
            for address in result.refused
        ]
        try:
            refused_id = await self._hold(work, refused, "refused", log, result.refused)
        except Exception:
            log.exception("hold failed")
            return TEMPFAIL_STORE
        return SmtpReply(
            250, "2.0.0", f"Ok: relayed as {work.queue_id}, upstream refusals held as {refused_id}"
        )

    async def _hold(
        self,
        work: _Work,
        decisions: Sequence[RecipientDecision],
        kind: str,
        log: Any,
        refusals: dict[str, Reply] | None = None,
    ) -> str:
        options = {r.address: r.options for r in work.incoming.recipients}
        facts: dict[str, Any] = {
            domain: report.assessment_json(assessment)
            for domain, assessment in work.assessments.items()
            if any(d.domain == domain for d in decisions)
        }
        if refusals:
            facts["upstream_refusals"] = {a: str(r) for a, r in refusals.items()}
        new = NewHold(
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
            client=work.incoming.client_ip,
            message_id=work.parsed.first("Message-ID") or "",
            findings=tuple(str(f) for f in work.findings),
            facts=facts,
            subject=self._subject(work) if self._settings.notify.include_subject else "",
        )
        held_here = {d.recipient for d in decisions}
        relayed_to = [
            d.recipient
            for d in work.decisions
            if d.action is Action.RELAY and d.recipient not in held_here
        ]
        details = audit.hold_details(
            new.sender,
            new.message_id,
            [(r.address, r.reasons) for r in new.recipients],
            new.findings,
        )

        def consequences(hold: Hold) -> tuple[list[AuditRecord], list[NewNotice]]:
            return [audit.held(work.queue_id, hold, **details)], self._notices.held(
                hold, relayed_to
            )

        hold, created = await self._store.hold(new, consequences)
        if created and self._on_hold is not None:
            self._on_hold()
        log.info(
            "held",
            hold_id=hold.id,
            recipients=[d.recipient for d in decisions],
            reasons=sorted({r.value for d in decisions for r in d.reasons}),
            new=created,
        )
        return hold.id

    def _subject(self, work: _Work) -> str:
        try:
            return headers.decode_words(work.parsed.first("Subject") or "")[:200]
        except headers.HeaderDecodeError:
            return ""

    async def _journal(self, work: _Work, accepted: Sequence[str], log: Any) -> None:
        records: list[AuditRecord] = []
        if work.assessments:  # checked mail: the trail shows why each recipient was secure
            facts = {
                d.domain: report.assessment_json(work.assessments[d.domain])
                for d in work.decisions
                if d.recipient in accepted and d.domain in work.assessments
            }
            records.append(
                audit.relayed(
                    work.queue_id,
                    work.parsed.first("Message-ID") or "",
                    work.incoming.sender,
                    accepted,
                    [str(f) for f in work.findings],
                    facts,
                )
            )
        try:
            await self._store.record_relayed(work.key, accepted, records)
        except Exception:
            # Delivered all the same: the only cost is a possible duplicate on a retry.
            log.exception("relay journal write failed")

    def _transaction(self, work: _Work, decisions: Sequence[RecipientDecision]) -> Transaction:
        options = {r.address: r.options for r in work.incoming.recipients}
        prefix = headers.trace_headers(
            helo=work.incoming.helo,
            client_ip=work.incoming.client_ip,
            hostname=self._hostname,
            protocol=_protocol(work.incoming),
            queue_id=work.queue_id,
            date=email.utils.formatdate(localtime=False, usegmt=True),
            summary=_summary(work, decisions),
        )
        return Transaction(
            sender=work.incoming.sender,
            recipients=tuple(
                Recipient(d.recipient, options.get(d.recipient, ())) for d in decisions
            ),
            data=prefix + work.data,
            mail_options=work.incoming.mail_options,
            smtputf8=work.incoming.smtputf8,
        )


@dataclass(frozen=True)
class _Work:
    queue_id: str
    incoming: Incoming
    data: bytes
    parsed: headers.Headers
    findings: tuple[classify.Finding, ...]
    decisions: tuple[RecipientDecision, ...]
    assessments: dict[str, Assessment]

    @property
    def key(self) -> str:
        """Idempotency key: the same message from the same sender to the same recipients."""
        digest = hashlib.sha256()
        digest.update(self.incoming.sender.encode("utf-8", "surrogateescape") + b"\0")
        for recipient in sorted(r.address for r in self.incoming.recipients):
            digest.update(recipient.encode("utf-8", "surrogateescape") + b"\0")
        digest.update(self.data)
        return digest.hexdigest()


def _summary(work: _Work, decisions: Sequence[RecipientDecision]) -> str:
    if not work.assessments:
        return f"not flagged; relayed unchecked; id={work.queue_id}"
    lowest = min((d.transport for d in decisions), default=Transport.NONE)
    label = "flagged" if work.findings else "checked"
    return f"{label}; relayed to secure recipients; transport={lowest.label}; id={work.queue_id}"


def _outcome(reply: SmtpReply, decisions: Sequence[RecipientDecision]) -> str:
    if reply.code >= 500:
        return "refused"
    if reply.code >= 400:
        return "tempfailed"
    actions = {d.action for d in decisions}
    if actions == {Action.RELAY}:
        return "relayed"
    return "held" if actions == {Action.HOLD} else "split"


def _protocol(incoming: Incoming) -> str:
    # RFC 3848 / RFC 6531 §3.7.3 protocol types for the Received: "with" clause.
    if incoming.smtputf8:
        return "UTF8SMTP"
    return "ESMTP" if incoming.esmtp else "SMTP"


def _upstream_reply(reply: Reply) -> SmtpReply:
    if reply.temporary or reply.code < 400:
        return TEMPFAIL_UPSTREAM
    return SmtpReply(reply.code, "5.0.0", f"Upstream refused: {reply.text[:200]}")


def _domain_or_none(address: str) -> str | None:
    try:
        return address_domain(address)
    except AddressError:
        return None
