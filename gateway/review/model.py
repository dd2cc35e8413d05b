"""The review of held mail: one model, shared by the command line and the web UI, so both
behave the same. List with a filter, show, release (with a written rationale), reject (with a
reason the sender is told), purge bodies past retention, and the sweep that escalates, expires
and retries.

Release is a state machine, held -> releasing -> released. The decision is committed first;
delivery follows, claimed by one process at a time, recorded per recipient in the relay
journal. A crash between the two leaves the hold "releasing", and the next sweep (or the
same command again) finishes it without delivering twice to a recipient the upstream took.
"""

from __future__ import annotations

import contextlib
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from gateway import logs, metrics
from gateway.audit import events as audit
from gateway.audit.path import MessagePath
from gateway.audit.path import find as find_path
from gateway.config.settings import Settings
from gateway.core import headers
from gateway.core.auditchain import Entry, Problem
from gateway.delivery.deliver import Delivery, Trace
from gateway.delivery.transport import Recipient, Transaction, failure_reply
from gateway.errors import ReviewError
from gateway.review.links import SecureLinking
from gateway.review.messageview import MessageView, view
from gateway.review.notices import Notices
from gateway.review.outbox import Outbox
from gateway.review.route import made_by_give_up, release_route
from gateway.store import (
    DECIDED,
    AuditQuery,
    Decide,
    DeliveryDone,
    DeliveryPending,
    Escalate,
    Hold,
    HoldQuery,
    HoldStore,
    Status,
)
from gateway.store.links import Link
from gateway.store.ownership import owner_dead, process_owner


@dataclass(frozen=True)
class ReleaseOutcome:
    hold: Hold
    done: bool  # False: delivery is pending (the upstream failed for now); the sweep retries
    delivered: tuple[str, ...] = ()
    refused: dict[str, str] = field(default_factory=dict)
    error: str = ""


@dataclass
class SweepReport:
    escalated: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)
    purged: list[str] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    notices_sent: int = 0
    pruned: int = 0  # finished delivery-queue entries deleted past retention
    unopened: list[str] = field(default_factory=list)  # links told about, not opened in time


class Review:
    def __init__(
        self,
        settings: Settings,
        store: HoldStore,
        delivery: Delivery,
        hostname: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._store = store
        self._delivery = delivery
        self._hostname = hostname
        self._clock = clock
        self.notices = Notices(settings.notify, settings.review, hostname, settings.web.public_url)
        # As many notices at once as the relay keeps connections for them.
        self._outbox = Outbox(store, delivery, settings.relay.max_connections)
        self.secure_links = SecureLinking(settings, store, self.notices, clock)
        self._log = logs.get("gateway.review")
        review = settings.review
        self._escalate_after = review.escalate_after
        self._expire_after = review.expire_after
        self._retention = review.retention
        # A release delivery not finished in this time is taken over by another process.
        self._lease = settings.relay.timeout * 4 + 60
        self._witnessed: tuple[int, str] | None = None

    # --- reading -----------------------------------------------------------------------------

    async def holds(self, query: HoldQuery) -> Sequence[Hold]:
        return await self._store.holds(query)

    async def count(self, query: HoldQuery) -> int:
        return await self._store.count_holds(query)

    async def get(self, hold_id: str) -> Hold:
        hold = await self._store.get(hold_id)
        if hold is None:
            raise ReviewError(f"no held message {hold_id!r}")
        return hold

    async def show(self, hold_id: str, by: str) -> tuple[Hold, MessageView | None]:
        hold = await self.get(hold_id)
        try:
            raw = await self._store.message(hold_id)
        except KeyError:
            return hold, None  # purged: the metadata and trail remain
        await self._store.append_audit([audit.viewed(hold, by)])
        return hold, view(raw)

    async def refresh_gauges(self) -> None:
        """Set the gauges that describe the store, for a scrape of /metrics."""
        held = HoldQuery.of(Status.HELD)
        metrics.HOLDS_AWAITING.set(await self._store.count_holds(held))
        escalated = HoldQuery(statuses=held.statuses, escalated=True)
        metrics.HOLDS_ESCALATED.set(await self._store.count_holds(escalated))
        metrics.QUEUE_DEPTH.set(await self._store.queue_depth())

    async def audit_head(self) -> tuple[int, str] | None:
        return await self._store.audit_head()

    async def audit_entry(self, seq: int) -> Entry | None:
        return await self._store.audit_entry(seq)

    async def audit_entries(self, since: float | None = None) -> Sequence[Entry]:
        return await self._store.audit_entries(since)

    async def audit_page(self, query: AuditQuery) -> tuple[Sequence[Entry], int]:
        """The entries of one page, and how many match in all."""
        return await self._store.audit_query(query), await self._store.count_audit(query)

    async def path(self, ident: str) -> MessagePath | None:
        """A message's path from arrival to each recipient's outcome (``audit.path``)."""
        return await find_path(self._store, ident)

    def release_route(self, hold: Hold) -> str:
        """For a waiting hold the delivery queue made when it gave up: how a release is sent
        (``route``); "" for any other hold."""
        if hold.status is not Status.HELD or not made_by_give_up(hold):
            return ""
        return release_route(self._settings.relay)

    async def audit_events(self) -> Sequence[str]:
        return await self._store.audit_events()

    async def verify_audit(self) -> tuple[int, Problem | None]:
        """How many entries, and where the hash chain breaks (None: it holds)."""
        return await self._store.verify_audit()

    async def raw_message(self, hold_id: str) -> bytes:
        try:
            return await self._store.message(hold_id)
        except KeyError as exc:
            raise ReviewError(f"the body of {hold_id} was purged") from exc

    # --- decisions ---------------------------------------------------------------------------

    async def release(self, hold_id: str, rationale: str, by: str) -> ReleaseOutcome:
        rationale = decision_text(
            rationale, "a release needs a written rationale: why is sharing right here?"
        )
        by = _name(by)
        hold = await self.get(hold_id)
        if hold.status is Status.HELD:
            now = self._clock()
            changed = await self._store.update(
                hold_id,
                frozenset({Status.HELD}),
                Decide(Status.RELEASING, now, by, rationale),
                audit=[audit.release_requested(hold, by, rationale)],
            )
            if changed is None:
                raise ReviewError(f"{hold_id} was decided by someone else meanwhile")
            hold = changed
        elif hold.status is not Status.RELEASING:
            raise ReviewError(f"{hold_id} is {hold.status.value}; only held messages are released")
        return await self._deliver(hold)

    async def reject(self, hold_id: str, reason: str, by: str) -> Hold:
        reason = decision_text(reason, "a reject needs a reason: the sender will be told it")
        by = _name(by)
        hold = await self.get(hold_id)
        if hold.status is not Status.HELD:
            raise ReviewError(f"{hold_id} is {hold.status.value}; only held messages are rejected")
        changed = await self._store.update(
            hold_id,
            frozenset({Status.HELD}),
            Decide(Status.REJECTED, self._clock(), by, reason),
            audit=[audit.rejected(hold, by, reason)],
            notices=self.notices.rejected(hold, by, reason),
        )
        if changed is None:
            raise ReviewError(f"{hold_id} was decided by someone else meanwhile")
        self._log.info("rejected", hold_id=hold_id, by=by)
        metrics.DECISIONS.labels("rejected").inc()
        return changed

    async def send_link(self, hold_id: str, rationale: str, by: str) -> tuple[Hold, list[Link]]:
        """Send the hold to its held recipients by secure link (``links``): a decision."""
        rationale = decision_text(
            rationale, "sending by secure link needs a written rationale, as a release does"
        )
        return await self.secure_links.send(await self.get(hold_id), rationale, _name(by))

    async def links(self, hold_id: str) -> Sequence[Link]:
        return await self._store.links_of((await self.get(hold_id)).id)

    async def revoke_link(self, link_id: str, reason: str, by: str) -> Link:
        reason = decision_text(reason, "revoking a link needs a reason: the trail keeps it")
        return await self.secure_links.revoke(link_id, reason, _name(by))

    async def purge(self, older_than: float, by: str) -> list[str]:
        """Delete the bodies of decided holds older than ``older_than`` seconds (counted from
        the decision); the metadata and the audit trail stay."""
        query = HoldQuery(statuses=DECIDED, purged=False, decided_before=self._clock() - older_than)
        purged = []
        for hold in await self._store.holds(query):
            await self._store.purge_body(hold.id, [audit.purged(hold, _name(by))])
            purged.append(hold.id)
        return purged

    # --- delivery of a release ---------------------------------------------------------------

    async def _deliver(self, hold: Hold) -> ReleaseOutcome:
        now = self._clock()
        owner = process_owner()
        dead = hold.attempt_by if hold.attempt_by and owner_dead(hold.attempt_by) else ""
        claimed = await self._store.claim(hold.id, owner, now, now - self._lease, dead)
        if claimed is None:
            return ReleaseOutcome(hold, False, error="another process is delivering it now")
        hold = claimed
        try:
            return await self._deliver_claimed(hold)
        except BaseException:
            # Give the claim back, so a retry need not wait for the lease to run out; the
            # journal still stops a second copy to whoever the upstream already took.
            with contextlib.suppress(Exception):  # the first error is the one to report
                await self._store.update(
                    hold.id, frozenset({Status.RELEASING}), DeliveryPending("delivery interrupted")
                )
            raise

    async def _deliver_claimed(self, hold: Hold) -> ReleaseOutcome:
        report = await self._delivery.deliver(
            await self._transaction(hold),
            f"release:{hold.id}",
            trace=Trace(
                helo=self._hostname,
                client_ip="127.0.0.1",
                protocol="ESMTP",
                queue_id=hold.id,
                summary=f"released after review; hold={hold.id}; by={hold.decided_by}",
                message_id=hold.message_id,
                hold_id=hold.id,
            ),
            delivered=hold.delivered,
        )
        if report.failure is not None and report.failure.temporary:
            return await self._pending(hold, str(failure_reply(report.failure)))
        done = set(report.accepted)
        refused = dict(hold.refused)
        temporary = ""
        for address, reply in report.refusals.items():
            if report.results[address].outcome.temporary:
                temporary = str(reply)
            else:
                refused[address] = str(reply)
        delivered = tuple(r.address for r in hold.recipients if r.address in done)
        if temporary:
            return await self._pending(hold, temporary, delivered)
        finished = await self._store.update(
            hold.id,
            frozenset({Status.RELEASING}),
            DeliveryDone(delivered, refused),
            audit=[audit.released(hold, hold.decided_by, hold.decision, delivered, refused)],
            notices=self.notices.released(hold, hold.decided_by, delivered, refused),
        )
        assert finished is not None
        metrics.DECISIONS.labels("released").inc()
        self._log.info(
            "released",
            hold_id=hold.id,
            by=hold.decided_by,
            delivered=delivered,
            refused=list(refused),
        )
        return ReleaseOutcome(finished, True, delivered, refused)

    async def _pending(
        self, hold: Hold, error: str, delivered: tuple[str, ...] | None = None
    ) -> ReleaseOutcome:
        # Leave the claim open again so the sweep (or the same command) retries at once.
        changed = await self._store.update(
            hold.id, frozenset({Status.RELEASING}), DeliveryPending(error, delivered)
        )
        self._log.warning("release pending", hold_id=hold.id, upstream=error)
        return ReleaseOutcome(changed or hold, False, delivered or (), error=error)

    async def _transaction(self, hold: Hold) -> Transaction:
        return Transaction(
            sender=hold.sender,
            recipients=tuple(Recipient(r.address, r.options) for r in hold.recipients),
            # The filter held CRLF-only text; normalised again (a scan, no copy when clean)
            # for a hold kept from before it did: the transports send it as it is.
            data=headers.normalise_line_endings(await self.raw_message(hold.id)),
            mail_options=hold.mail_options,
            smtputf8=any(o == "SMTPUTF8" for o in hold.mail_options),
            # A release of flagged mail is proven in the trail like its first delivery.
            flagged=bool(hold.findings),
        )

    # --- the sweep ---------------------------------------------------------------------------

    async def sweep(self) -> SweepReport:
        """Escalate, expire, purge past retention, retry pending releases, send notices."""
        now = self._clock()
        report = SweepReport()
        for hold in await self._store.holds(HoldQuery.of(Status.HELD)):
            waited = now - hold.created_at
            if waited >= self._expire_after:
                changed = await self._store.update(
                    hold.id,
                    frozenset({Status.HELD}),
                    Decide(Status.EXPIRED, now, audit.GATEWAY),
                    audit=[audit.expired(hold, self._expire_after)],
                    notices=self.notices.expired(hold),
                )
                if changed is not None:
                    report.expired.append(hold.id)
                    metrics.DECISIONS.labels("expired").inc()
            elif waited >= self._escalate_after and hold.escalated_at is None:
                changed = await self._store.update(
                    hold.id,
                    frozenset({Status.HELD}),
                    Escalate(now),
                    audit=[audit.escalated(hold, self.notices.escalation_contacts, waited)],
                    notices=self.notices.escalated(hold, waited),
                )
                if changed is not None:
                    report.escalated.append(hold.id)
                    metrics.DECISIONS.labels("escalated").inc()
        for hold in await self._store.holds(HoldQuery.of(Status.RELEASING)):
            stale = hold.attempt_at is None or hold.attempt_at < now - self._lease
            if stale or owner_dead(hold.attempt_by):
                outcome = await self._deliver(hold)
                if outcome.done:
                    report.released.append(hold.id)
        report.purged = await self.purge(self._retention, audit.GATEWAY)
        report.pruned = await self._store.prune_queued(now - self._retention)
        report.unopened = await self.secure_links.sweep_unopened()
        # The clock again: the notices this sweep queued are due now, not before it began.
        report.notices_sent = await self._outbox.drain(self._clock())
        await self._witness_head()
        return report

    async def _witness_head(self) -> None:
        """Log the audit trail's head when it moved, also by another process (a decision
        from the shell): the service's log is the witness that shows a cut-off end."""
        head = await self.audit_head()
        if head is not None and head != self._witnessed:
            self._witnessed = head
            self._log.info("audit head", seq=head[0], head=head[1])

    async def drain_notices(self) -> int:
        return await self._outbox.drain(self._clock())


def decision_text(text: str, refusal: str) -> str:
    """A release's rationale or a reject's reason as it is recorded: stripped, controls other
    than line breaks and tabs removed. Refused (``ReviewError(refusal)``) when nothing would be
    left to read: only whitespace, zero-width or bidi marks, NUL and other controls. The one
    check for the command line and the web UI."""
    kept = "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch) != "Cc")
    kept = kept.strip()
    if not any(_readable(ch) for ch in kept):
        raise ReviewError(refusal)
    return kept


# Characters that render as nothing though Unicode does not class them as space or format.
_BLANK = frozenset("\u115f\u1160\u2800\u3164\uffa0")


def _readable(ch: str) -> bool:
    # C*: controls, format (zero-width, bidi, BOM), unassigned, private, surrogates;
    # Z*: separators; M*: a combining mark with nothing to combine with.
    return unicodedata.category(ch)[0] not in "CZM" and ch not in _BLANK and not ch.isspace()


def _name(by: str) -> str:
    name = audit.actor(by)
    if not name:
        raise ReviewError("say who decided (--by)")
    return name
