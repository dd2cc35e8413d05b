"""The filter: classify a message, decide per recipient, hold and relay, and choose the reply.

The reply keeps the promise of RFC 5321 §6.1: 250 only when every recipient is relayed or
durably held; 4xx when anything is left undone, so the sending MTA keeps the message and
retries; 5xx only for what retrying can never fix. Holds are written before the relay and are
idempotent, so a retry after a 4xx never makes a second hold, and a journal of what the
upstream accepted stops a retry from relaying a second copy.

The recipients' decisions are made by ``decisions``, the hold's contents by ``holding``, the
audit records and the notices' subject by ``trail``, the replies by ``replies``, the queue
entry by ``queueing``.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from gateway import logs, metrics
from gateway.audit import events as audit
from gateway.audit import queue as queue_audit
from gateway.config.settings import Settings
from gateway.config.values import DirectDelivery, Scope
from gateway.core import classify, headers
from gateway.core.addresses import normalise_domain
from gateway.core.model import Action, Reason, RecipientDecision
from gateway.delivery.deliver import Delivery, Report, Trace
from gateway.delivery.transport import Recipient, Reply, Transaction, failure_reply
from gateway.filter import trail
from gateway.filter.decisions import Decisions, PostureSource
from gateway.filter.holding import new_hold, relayed_beside
from gateway.filter.message import (
    Incoming,
    Work,
    domain_or_none,
    forwarded_fields,
    protocol,
    summary,
    trace_comment,
)
from gateway.filter.queueing import queue_entry
from gateway.filter.replies import (
    TEMPFAIL_DNS,
    TEMPFAIL_STORE,
    outcome,
    upstream_reply,
)
from gateway.review.links import SecureLinking, automatic_reasons
from gateway.review.notices import Notices
from gateway.smtp.reply import SmtpReply
from gateway.store import (
    AuditRecord,
    Hold,
    HoldStore,
    NewNotice,
)

# A message up to this size gets the raw-bytes keyword check on the event loop (a few
# microseconds for a 5 KB message); a larger one, or one that may hold a keyword, is scanned
# in a thread, as a MIME parse or a long search would stall every other session.
INLINE_SCAN_BYTES = 65_536


class Filter:
    def __init__(
        self,
        settings: Settings,
        posture: PostureSource,
        store: HoldStore,
        delivery: Delivery,
        hostname: str,
        on_hold: Callable[[], None] | None = None,
        on_queue: Callable[[], None] | None = None,
    ) -> None:
        self._settings = settings
        self._posture = posture
        self._store = store
        self._delivery = delivery
        self._notices = Notices(settings.notify, settings.review, hostname, settings.web.public_url)
        self._links = SecureLinking(settings, store, self._notices)
        # Canonical, like the domains they are compared with ("School.Test." is school.test).
        self._local_domains = frozenset(normalise_domain(d) for d in settings.policy.local_domains)
        self._decisions = Decisions(posture, self._local_domains, settings.policy.on_dns_error)
        # Called after a new hold, so its notices go out now rather than at the next sweep.
        self._on_hold = on_hold
        self._on_queue = on_queue  # after a new queue entry: the runner delivers it now
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
            **forwarded_fields(incoming),
            sender=incoming.sender,
            recipients=[r.address for r in incoming.recipients],
            size=len(data),
            message_id=parsed.first("Message-ID") or "",
            flagged=flagged,
            findings=[str(f) for f in findings],
        )
        if flagged or self._settings.policy.scope is Scope.ALL:
            decisions, assessments = await self._decisions.decide(incoming, parsed)
            logs.info_lines(
                log,
                "recipient verdict",
                [
                    {
                        "recipient": d.recipient,
                        "domain": d.domain,
                        "action": d.action.value,
                        "reasons": [r.value for r in d.reasons],
                        "transport": d.transport.label,
                        "checked": bool(assessments),
                    }
                    for d in decisions
                ],
            )
        else:
            decisions = tuple(
                RecipientDecision(r.address, "", Action.RELAY) for r in incoming.recipients
            )
            assessments = {}
            # Unchecked mail has one outcome for every recipient, relayed as it is: one line
            # for the message, not one per recipient, on the path most mail takes.
            log.info(
                "recipient verdict",
                recipients=[d.recipient for d in decisions],
                action=Action.RELAY.value,
                checked=False,
            )
        if assessments:
            # One counter update per action, not per recipient (each labels() is a lock).
            for action, count in Counter(d.action.value for d in decisions).items():
                metrics.RECIPIENTS.labels(action).inc(count)
        if any(d.action is Action.TEMPFAIL for d in decisions):
            log.info("message temp-failed", reason="recipient posture undetermined")
            metrics.MESSAGES.labels("tempfailed").inc()
            return TEMPFAIL_DNS
        work = Work(queue_id, incoming, data, parsed, findings, decisions, assessments)
        reply = await self._deliver(work, log)
        metrics.MESSAGES.labels(outcome(reply, decisions)).inc()
        return reply

    async def _classify(self, parsed: headers.Headers, data: bytes) -> tuple[classify.Finding, ...]:
        findings = classify.classify_headers(parsed, self._rules)
        if findings or not self._rules.body_keywords:
            return findings
        c = self._settings.classify
        keywords = self._rules.body_keywords
        if len(data) <= INLINE_SCAN_BYTES and classify.plainly_absent(data, keywords):
            # Most mail: the raw bytes hold no keyword and nothing is encoded, settled in
            # microseconds here; the hop to a thread would cost more than the scan.
            return findings
        try:
            # CPU-bound MIME parse: off the event loop, bounded in size and time.
            return await asyncio.wait_for(
                asyncio.to_thread(classify.scan_body, data, keywords, c.body_scan_bytes),
                c.body_scan_timeout,
            )
        except TimeoutError:
            return (classify.Finding("body-scan-timeout", "the body scan gave up: fail closed"),)
        except Exception:  # a body the parser chokes on must not let a message through
            return (classify.Finding("body-scan-failed", "the body could not be scanned"),)

    async def _deliver(self, work: Work, log: Any) -> SmtpReply:
        to_hold = [d for d in work.decisions if d.action is Action.HOLD]
        relay = [d for d in work.decisions if d.action is Action.RELAY]
        direct = [self._direct(work, d) for d in relay]
        to_queue = [d for d, queued in zip(relay, direct, strict=True) if queued]
        to_relay = [d for d, queued in zip(relay, direct, strict=True) if not queued]
        hold_id = queue_id = ""
        journalled: frozenset[str] | None = None
        if to_hold:
            try:
                # With a relay to follow, the hold's write reads the relay journal too: one
                # trip to the store for both.
                hold_id, journalled = await self._hold(
                    work, to_hold, "policy", log, journal=bool(to_relay)
                )
            except Exception:
                log.exception("hold failed")
                return TEMPFAIL_STORE
        if to_queue:
            try:
                queue_id = await self._enqueue(work, to_queue, log)
            except Exception:
                log.exception("queue failed")
                return TEMPFAIL_STORE
        if not to_relay:
            held = f"held for review as {hold_id}"
            if not queue_id:
                return SmtpReply(250, "2.0.0", f"Ok: {held}")
            return SmtpReply(
                250, "2.0.0", f"Ok: queued as {queue_id}" + (f", {held}" * bool(hold_id))
            )

        report = await self._delivery.deliver(
            self._transaction(work, to_relay),
            work.key,
            journalled=journalled,
            trace=Trace(
                helo=work.incoming.helo,
                client_ip=work.incoming.client_ip,
                protocol=protocol(work.incoming),
                queue_id=work.queue_id,
                summary=summary(work, to_relay),
                message_id=work.parsed.first("Message-ID") or "",
                comment=trace_comment(work.incoming),
                client_name=work.incoming.client_name,
            ),
            audit=lambda accepted: trail.relayed(work, accepted, first=not to_hold),
        )
        if report.failure is not None:
            upstream = failure_reply(report.failure)
            log.warning("relay failed", stage=report.failure.stage, upstream=str(upstream))
            if report.failure.temporary or not (to_hold or queue_id):
                return upstream_reply(upstream)
            # Refused for good while part of the message is held: the refused recipients
            # are held too (below), never dropped.
        if report.sent:
            log.info("relayed", recipients=list(report.sent), upstream=str(report.reply or ""))
        if not to_hold and not report.refusals:
            await self._confirm(work, report, log)
        return await self._after_relay(work, to_hold, report, hold_id, log, queue_id)

    async def _confirm(self, work: Work, report: Report, log: Any) -> None:
        """``[notify] confirm_delivery``: every recipient has it, proven in this send."""
        if not report.proof or set(report.proof) != {r.address for r in work.incoming.recipients}:
            return
        subject = self._shown_subject(work)
        notices = self._notices.delivered(
            work.incoming.sender,
            work.parsed.first("Message-ID") or "",
            list(report.proof.values()),
            subject,
            work.queue_id,
        )
        if not notices:
            return
        try:
            await self._store.queue_notices(notices)
        except Exception:  # delivered all the same; only the confirmation is lost
            log.exception("confirmation not queued")
            return
        if self._on_hold is not None:
            self._on_hold()  # send it now, not at the next sweep

    async def _after_relay(
        self,
        work: Work,
        to_hold: Sequence[RecipientDecision],
        result: Report,
        hold_id: str,
        log: Any,
        queue_id: str = "",
    ) -> SmtpReply:
        refusals = result.refusals
        queued = f", queued as {queue_id}" if queue_id else ""
        if not refusals:
            held = queued + (f", held for review as {hold_id}" if hold_id else "")
            # A retry of a message the upstream already took (our 250 was lost): nothing is
            # sent again, and the reply says so rather than claim a new relay.
            already = "already " if result.accepted and not result.sent else ""
            if already:
                log.info("already relayed", recipients=list(result.accepted))
            return SmtpReply(250, "2.0.0", f"Ok: {already}relayed as {work.queue_id}{held}")
        log.warning("upstream refused", refused={a: str(r) for a, r in refusals.items()})
        if not result.accepted and not to_hold and not queue_id:
            # Nothing was delivered or held: hand the upstream's answer back, so the sending
            # MTA retries (4xx) or bounces (5xx) exactly as it would have without us.
            replies = list(refusals.values())
            worst = next((r for r in replies if r.temporary), replies[0])
            return upstream_reply(worst)
        # Part of the message is delivered or held; the refused recipients must not be
        # dropped: hold them, with the upstream's words, for review and notice.
        refused = [
            RecipientDecision(
                address, domain_or_none(address) or "", Action.HOLD, (Reason.UPSTREAM_REFUSED,)
            )
            for address in refusals
        ]
        try:
            refused_id, _ = await self._hold(work, refused, "refused", log, refusals)
        except Exception:
            log.exception("hold failed")
            return TEMPFAIL_STORE
        return SmtpReply(
            250,
            "2.0.0",
            f"Ok: relayed as {work.queue_id}{queued}, upstream refusals held as {refused_id}",
        )

    async def _hold(
        self,
        work: Work,
        decisions: Sequence[RecipientDecision],
        kind: str,
        log: Any,
        refusals: dict[str, Reply] | None = None,
        journal: bool = False,
    ) -> tuple[str, frozenset[str] | None]:
        """The hold's id; with ``journal``, also what the relay journal holds for the message,
        read in the hold's transaction."""
        new = new_hold(work, decisions, kind, self._shown_subject(work), refusals)
        relayed_to = relayed_beside(work, decisions)
        details = audit.hold_details(
            new.sender,
            new.message_id,
            [(r.address, r.reasons) for r in new.recipients],
            new.findings,
        )

        # Sent by secure link at once ([secure_link] automatic_for): the sender and reviewers
        # hear that instead of "held", unless the sending fails (``send_automatically``).
        automatic = automatic_reasons(new.recipients, self._links.automatic_for)

        def consequences(hold: Hold) -> tuple[list[AuditRecord], list[NewNotice]]:
            # The policy hold comes before any relay: the message's arrival goes with it.
            arrival = trail.received(work) if kind == "policy" else []
            notices = [] if automatic else self._notices.held(hold, relayed_to)
            return [*arrival, audit.held(work.queue_id, hold, **details)], notices

        journalled: frozenset[str] | None = None
        if journal:
            hold, created, journalled = await self._store.hold_and_relayed(
                new, consequences, work.key
            )
        else:
            hold, created = await self._store.hold(new, consequences)
        if created and automatic:
            await self._links.send_automatically(
                hold, automatic, self._notices.held(hold, relayed_to)
            )
        if created and self._on_hold is not None:
            self._on_hold()
        log.info(
            "held",
            hold_id=hold.id,
            recipients=[d.recipient for d in decisions],
            reasons=sorted({r.value for d in decisions for r in d.reasons}),
            new=created,
        )
        return hold.id, journalled

    def _direct(self, work: Work, decision: RecipientDecision) -> bool:
        """Whether the gateway delivers to this recipient's MX hosts itself ([delivery]
        direct); mail for the organisation's own domains always goes to the smarthost."""
        direct = self._settings.delivery.direct
        if direct is DirectDelivery.NONE or (
            direct is DirectDelivery.FLAGGED and not work.findings
        ):
            return False
        domain = decision.domain or domain_or_none(decision.recipient)
        return domain is not None and domain not in self._local_domains

    async def _enqueue(self, work: Work, decisions: Sequence[RecipientDecision], log: Any) -> str:
        """Durably queue the message for direct delivery (the body encrypted and fsync'd, as
        a hold's), idempotent on the message: an MTA's retry after a lost 250 finds it."""
        subject = self._shown_subject(work)
        new = queue_entry(work, decisions, subject)
        entry, created = await self._store.enqueue(
            new, [queue_audit.queued(new)] if new.flagged else []
        )
        if created and self._on_queue is not None:
            self._on_queue()
        log.info(
            "queued", queue_id=entry.id, recipients=[d.recipient for d in decisions], new=created
        )
        return entry.id

    def _shown_subject(self, work: Work) -> str:
        """The subject for notices, when [notify] include_subject allows it."""
        return trail.subject_of(work) if self._settings.notify.include_subject else ""

    def _transaction(self, work: Work, decisions: Sequence[RecipientDecision]) -> Transaction:
        options = {r.address: r.options for r in work.incoming.recipients}
        return Transaction(
            sender=work.incoming.sender,
            recipients=tuple(
                Recipient(d.recipient, options.get(d.recipient, ())) for d in decisions
            ),
            data=work.data,
            mail_options=work.incoming.mail_options,
            smtputf8=work.incoming.smtputf8,
            flagged=bool(work.findings),
            requiretls=work.incoming.requiretls,
        )
