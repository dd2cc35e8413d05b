"""The delivery queue's runner: the gateway delivers queued messages to the recipients' MX
hosts itself ([delivery] direct), retries what failed for now, and never drops a recipient.

An attempt claims due entries with a lease (another process takes them over once the lease
runs out, or at once when it sees the claimer's process gone), sends one transaction per
recipient domain through the one delivery path (``Delivery.deliver`` under the key
``queue:<id>:<domain>``: the relay journal gives each recipient one copy across crashes), and
writes each recipient's outcome:

    accepted                  delivered
    5xx                       failed: the sender gets a non-delivery notice (RFC 3464)
    4xx, unreachable, tls     retried after [delivery] retry_after, doubling each time,
                              until give_up_after since arrival; then flagged mail is held
                              for review (delivery-tls-failed or delivery-failed) and
                              unflagged mail is bounced with a non-delivery notice

Flagged mail goes only as the transport proves the recipient's policy (``Transaction.flagged``):
no plaintext fallback exists here to take.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import replace

from gateway import logs, metrics
from gateway.audit import events
from gateway.audit import queue as trail
from gateway.config.settings import Settings
from gateway.core.model import Reason
from gateway.delivery.bounce import non_delivery
from gateway.delivery.deliver import Delivery, Report, Trace
from gateway.delivery.transport import Outcome, Recipient, Transaction
from gateway.review.notices import Notices
from gateway.store import (
    AuditRecord,
    HeldRecipient,
    Hold,
    HoldFacts,
    HoldStore,
    NewHold,
    NewNotice,
    Queued,
    QueuedRecipient,
    RecipientState,
)
from gateway.store.ownership import process_owner

PARALLEL = 20  # deliveries at once, per process
CLAIM = 5 * PARALLEL  # entries claimed at a time
ROUND = 10 * CLAIM  # entries one run_due starts at most, so that a stop is not kept waiting
MIN_LEASE = 300.0  # seconds; at least ten transport timeouts (several MX hosts, each slow)


class QueueRunner:
    def __init__(
        self,
        store: HoldStore,
        delivery: Delivery,
        settings: Settings,
        hostname: str,
        clock: Callable[[], float] = time.time,
        owner: str = "",
    ) -> None:
        self._store = store
        self._delivery = delivery
        self._notices = Notices(settings.notify, settings.review, hostname, settings.web.public_url)
        self._retry_after = settings.delivery.retry_after
        self._give_up_after = settings.delivery.give_up_after
        self._lease = max(MIN_LEASE, settings.delivery.timeout * 10)
        self._clock = clock
        self._owner = owner or process_owner()
        self._log = logs.get("gateway.queue")

    async def run_due(self) -> int:
        """Attempt every entry due now, up to PARALLEL at once; how many were attempted.

        Each delivery waits mostly on the network (a connection, TLS, the host's replies), so
        one at a time leaves the queue behind what arrives; Postfix likewise runs up to 20
        deliveries per destination. Entries are claimed CLAIM at a time, since a claim costs
        about as much for one entry as for many, and again when the claimed ones have started
        and half the slots are free. An attempt that fails (the store's write) does not stop
        the others; the first such error is raised once all have ended, and its entry is
        tried again when its lease runs out. At most ROUND entries a run: what arrives all the
        while waits for the next run, so a stop waits for no more than those."""
        attempted = 0
        waiting: deque[tuple[Queued, float]] = deque()  # claimed, not started; when claimed
        running: set[asyncio.Task[None]] = set()
        errors: list[BaseException] = []
        more = True
        try:
            while True:
                room = not waiting and len(running) <= PARALLEL // 2
                if more and room and attempted < ROUND:
                    now = self._clock()
                    batch = await self._store.claim_queued(
                        now, now + self._lease, self._owner, CLAIM
                    )
                    more = len(batch) == CLAIM
                    waiting.extend((entry, now) for entry in batch)
                while waiting and len(running) < PARALLEL:
                    entry, claimed = waiting.popleft()
                    if self._clock() > claimed + self._lease / 2:
                        # Its lease could run out during the attempt, and another process
                        # start a second one: left to whoever claims it when the lease ends.
                        continue
                    running.add(asyncio.create_task(self._attempt(entry)))
                    attempted += 1
                if not running:
                    break
                done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                errors += [e for e in (task.exception() for task in done) if e is not None]
                # What finished may have freed room for entries that fell due meanwhile.
                more = more or (bool(done) and not errors)
        finally:
            for task in running:
                task.cancel()
            if running:
                await asyncio.wait(running)
        if errors:
            raise errors[0]
        return attempted

    async def _attempt(self, entry: Queued) -> None:
        log = self._log.bind(queue_id=entry.id)
        try:
            data = await self._store.queued_message(entry.id)
        except Exception as exc:  # the body's file: keep the entry, an operator must look
            log.exception("queued body unreadable")
            await self._write(entry, entry.recipients, f"body unreadable: {exc!r}")
            return
        outcomes = {r.address: r for r in entry.recipients}
        for domain, group in _by_domain(entry.pending).items():
            outcomes.update(await self._send(entry, data, domain, group))
        recipients = [outcomes[r.address] for r in entry.recipients]
        await self._conclude(entry, data, recipients)

    async def _send(
        self, entry: Queued, data: bytes, domain: str, group: Sequence[QueuedRecipient]
    ) -> dict[str, QueuedRecipient]:
        transaction = Transaction(
            sender=entry.sender,
            recipients=tuple(Recipient(r.address, r.options) for r in group),
            data=data,
            mail_options=entry.mail_options,
            smtputf8=entry.smtputf8,
            flagged=entry.flagged,
            requiretls=entry.requiretls,
        )
        trace = Trace(entry.helo, entry.client, entry.protocol, entry.id, entry.summary)
        trace = replace(
            trace,
            message_id=entry.message_id,
            comment=entry.trace_comment,
            client_name=entry.client_name,
        )

        def audit(accepted: Sequence[str]) -> list[AuditRecord]:
            return [trail.delivered(entry, domain, accepted)] if entry.flagged else []

        try:
            report = await self._delivery.deliver(
                transaction, f"queue:{entry.id}:{domain}", trace=trace, audit=audit
            )
        except Exception as exc:  # the journal's read, a transport's bug: try again later
            self._log.exception("queued delivery not attempted", queue_id=entry.id)
            return {r.address: replace(r, reply=f"not attempted: {exc!r}"[:300]) for r in group}
        return self._outcomes(entry, group, report)

    def _outcomes(
        self, entry: Queued, group: Sequence[QueuedRecipient], report: Report
    ) -> dict[str, QueuedRecipient]:
        now = self._clock()
        failure = report.failure
        stage = failure.stage if failure is not None else "RCPT"
        hosts: tuple[str, ...] = failure.hosts if failure is not None else ()
        done: dict[str, QueuedRecipient] = {}
        for recipient in group:
            result = report.results[recipient.address]
            reply = str(result.reply) if result.reply is not None else ""
            hosts_of: tuple[str, ...] = ()
            proof = recipient.proof
            if result.outcome is Outcome.ACCEPTED:
                state, stage_of = RecipientState.DELIVERED, ""
                outcome = "delivered"
                proof = report.proof.get(recipient.address, proof)
            else:
                temporary = result.outcome.temporary
                state = RecipientState.PENDING if temporary else RecipientState.FAILED
                stage_of, hosts_of = stage, hosts
                outcome = "deferred" if temporary else "refused"
            metrics.DELIVERIES.labels(outcome).inc()
            at = None if state is RecipientState.PENDING else now
            done[recipient.address] = replace(
                recipient,
                state=state,
                reply=reply,
                stage=stage_of,
                hosts=hosts_of,
                done_at=at,
                proof=proof,
            )
        self._log.info(
            "queued delivery attempted",
            queue_id=entry.id,
            flagged=entry.flagged,
            outcomes={a: f"{r.state.value}: {r.reply}" for a, r in done.items()},
            hosts=list(hosts),
        )
        return done

    async def _conclude(
        self, entry: Queued, data: bytes, recipients: list[QueuedRecipient]
    ) -> None:
        """Write the attempt: refusals told, what is left retried or, past give_up_after,
        handed to review (flagged) or bounced (unflagged)."""
        was_pending = {r.address for r in entry.pending}
        refused = {
            r.address: r.reply
            for r in recipients
            if r.state is RecipientState.FAILED and r.address in was_pending
        }
        audit: list[AuditRecord] = []
        notices: list[NewNotice] = []
        if refused:
            why = "Their mail server refused it, so it will not be tried again."
            notices += non_delivery(self._notices, entry, refused, why)
            if entry.flagged:
                audit.append(trail.failed(entry, refused, gave_up=False))
        pending = [r for r in recipients if r.state is RecipientState.PENDING]
        now = self._clock()
        if pending and now >= entry.created_at + self._give_up_after:
            recipients = await self._give_up(entry, data, recipients, pending, audit, notices)
        notices += self._confirmation(entry, recipients)
        error = "; ".join(f"{r.address}: {r.reply}" for r in pending)
        await self._write(entry, recipients, error, audit, notices)

    def _confirmation(
        self, entry: Queued, recipients: Sequence[QueuedRecipient]
    ) -> list[NewNotice]:
        """``[notify] confirm_delivery``: flagged mail whose every recipient has it now (none
        refused, held or purged) is confirmed to the sender, with each copy's proof."""
        if not entry.flagged or not entry.pending:
            return []
        if any(r.state is not RecipientState.DELIVERED for r in recipients):
            return []
        # A copy taken before a crash has no proof here: it is named, never described.
        proofs = [r.proof or {"recipient": r.address} for r in recipients]
        return self._notices.delivered(
            entry.sender, entry.message_id, proofs, entry.subject, entry.id
        )

    async def _give_up(
        self,
        entry: Queued,
        data: bytes,
        recipients: list[QueuedRecipient],
        pending: list[QueuedRecipient],
        audit: list[AuditRecord],
        notices: list[NewNotice],
    ) -> list[QueuedRecipient]:
        now = self._clock()
        if entry.flagged:
            hold = await self._hold(entry, data, recipients, pending)
            state, reply = RecipientState.HELD, f"held for review as {hold.id}"
            metrics.DELIVERIES.labels("held").inc(len(pending))
        else:
            waited = _in_words(self._give_up_after)
            why = f"We kept trying for {waited}; their mail servers did not take it."
            notices += non_delivery(
                self._notices, entry, {r.address: r.reply for r in pending}, why
            )
            state, reply = RecipientState.FAILED, ""
            metrics.DELIVERIES.labels("failed").inc(len(pending))
        given_up = {r.address for r in pending}
        self._log.warning(
            "queued delivery given up", queue_id=entry.id, recipients=sorted(given_up)
        )
        return [
            replace(r, state=state, reply=reply or r.reply, done_at=now)
            if r.address in given_up
            else r
            for r in recipients
        ]

    async def _hold(
        self,
        entry: Queued,
        data: bytes,
        recipients: Sequence[QueuedRecipient],
        pending: Sequence[QueuedRecipient],
    ) -> Hold:
        """A hold for review of the flagged recipients that could not be delivered, with each
        MX host's failure; idempotent, so a crash before the queue's write makes no second."""
        domains = {r.domain for r in pending}
        facts = HoldFacts(
            tuple(a for a in entry.facts.assessments if a.domain in domains),
            {},
            {r.address: r.hosts or (r.reply,) for r in pending},
        )
        new = NewHold(
            key=f"queue:{entry.id}:gave-up",
            sender=entry.sender,
            recipients=tuple(
                HeldRecipient(r.address, r.domain, (_reason(r).value,), r.options) for r in pending
            ),
            mail_options=entry.mail_options,
            message=data,
            client=entry.sent_from or entry.client,
            message_id=entry.message_id,
            findings=entry.findings,
            facts=facts,
            subject=entry.subject,
        )
        delivered = [r.address for r in recipients if r.state is RecipientState.DELIVERED]
        details = events.hold_details(
            new.sender,
            new.message_id,
            [(r.address, r.reasons) for r in new.recipients],
            new.findings,
        )

        def consequences(hold: Hold) -> tuple[list[AuditRecord], list[NewNotice]]:
            return [events.held(entry.id, hold, **details)], self._notices.held(hold, delivered)

        hold, _ = await self._store.hold(new, consequences)
        return hold

    async def _write(
        self,
        entry: Queued,
        recipients: Sequence[QueuedRecipient],
        error: str,
        audit: Sequence[AuditRecord] = (),
        notices: Sequence[NewNotice] = (),
    ) -> None:
        now = self._clock()
        deadline = entry.created_at + self._give_up_after
        # RFC 5321 §4.5.4.1: back off; the last try falls on the give-up time itself.
        delay = self._retry_after * 2 ** min(entry.attempts, 20)
        next_at = max(now, min(now + delay, deadline))
        written = await self._store.queue_progress(
            entry.id, self._owner, recipients, next_at, error, audit, notices
        )
        if written is None:
            self._log.warning("queue lease lost; another process took the entry", queue_id=entry.id)


def _by_domain(recipients: Sequence[QueuedRecipient]) -> dict[str, list[QueuedRecipient]]:
    groups: dict[str, list[QueuedRecipient]] = {}
    for recipient in recipients:
        groups.setdefault(recipient.domain, []).append(recipient)
    return groups


def _reason(recipient: QueuedRecipient) -> Reason:
    # The transport's stage "tls": no MX host could be authenticated as the policy requires.
    return Reason.DELIVERY_TLS_FAILED if recipient.stage == "tls" else Reason.DELIVERY_FAILED


def _in_words(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:g} hour" + ("" if seconds == 3600 else "s")
    return f"{seconds / 60:g} minute" + ("" if seconds == 60 else "s")


async def purge(
    store: HoldStore, notices: Notices, queue_id: str, reason: str, by: str
) -> Queued | None:
    """Take a waiting entry out of the queue for an operator (`gateway queue purge`): its
    pending recipients are not delivered, the sender is told why, the trail records who. None
    when there is no such waiting entry."""
    entry = await store.queued(queue_id)
    if entry is None or entry.done_at is not None:
        return None
    pending = [r.address for r in entry.pending]
    removed = {address: f"removed from the queue by {by}: {reason}" for address in pending}
    why = f"An operator at {notices.organisation} took it out of the delivery queue: {reason}"
    told = non_delivery(notices, entry, removed, why)
    purged = await store.purge_queued(queue_id, [trail.purged(entry, by, reason, pending)], told)
    if purged is not None:
        metrics.DELIVERIES.labels("purged").inc(len(pending))
    return purged
