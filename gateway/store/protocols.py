"""The store's interfaces, one per concern. A backend may implement several (the embedded
``SqliteStore`` implements the five of the hold store); each component is typed against the
ones it uses. Every method is a coroutine: backends do their I/O off the event loop. The
account records, whose callers are synchronous, have theirs apart (``accountstore``).

Writes that take ``audit`` (and ``notices``) commit them in the same transaction as the change,
so the trail never misses an event that happened, nor records one that did not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from gateway.core.auditchain import Entry, Problem
from gateway.core.securelink import CodeOutcome
from gateway.core.stscache import CachedPolicy, FetchFailure
from gateway.store.changes import HoldChange
from gateway.store.links import Link
from gateway.store.probes import ProbeRecord
from gateway.store.queries import AuditQuery, HoldQuery
from gateway.store.queued import NewQueued, Queued, QueuedRecipient
from gateway.store.records import (
    AuditRecord,
    Consequences,
    Hold,
    NewHold,
    NewNotice,
    Notice,
    Status,
)


class Holds(Protocol):
    """Held messages: the encrypted body, its metadata, and its state."""

    async def hold(self, new: NewHold, then: Consequences | None = None) -> tuple[Hold, bool]:
        """Durably store the message (encrypted, fsync'd) and its metadata, with what ``then``
        makes of the new hold, in one transaction. Returns the hold and whether it was created
        now (False: an earlier delivery of the same message made it; nothing of ``then`` is
        stored or sent: a store may run it before its transaction, and then throws its result
        away). ``then`` is a pure function of the hold: it runs outside the writer's lock."""
        ...

    async def hold_and_relayed(
        self, new: NewHold, then: Consequences | None, journal_key: str
    ) -> tuple[Hold, bool, frozenset[str]]:
        """``hold``, and in the same round trip what the relay journal holds under
        ``journal_key`` (``RelayJournal.relayed``, read in the hold's transaction): a message
        held in part reads the journal before the relay of the rest without a second trip."""
        ...

    async def get(self, hold_id: str) -> Hold | None: ...

    async def message(self, hold_id: str) -> bytes:
        """The decrypted held message; KeyError if its body was purged."""
        ...

    async def holds(self, query: HoldQuery) -> Sequence[Hold]:
        """The holds that match, in the query's order, at most ``query.limit`` of them."""
        ...

    async def count_holds(self, query: HoldQuery) -> int:
        """How many holds match (``limit`` and ``offset`` ignored)."""
        ...

    async def update(
        self,
        hold_id: str,
        expect: frozenset[Status],
        change: HoldChange,
        audit: Sequence[AuditRecord] = (),
        notices: Sequence[NewNotice] = (),
    ) -> Hold | None:
        """Apply ``change`` if the hold's status is one of ``expect`` (compare and set), with
        its audit entries and notices; the changed hold, or None if it was not changed."""
        ...

    async def claim(
        self, hold_id: str, owner: str, now: float, stale_before: float, dead_owner: str = ""
    ) -> Hold | None:
        """Take the right to deliver a release: only one process relays a hold at a time.
        Succeeds when nobody holds the claim, it is stale, or its owner is dead; never
        twice at once, not even within one process."""
        ...

    async def purge_body(self, hold_id: str, audit: Sequence[AuditRecord] = ()) -> bool:
        """Delete the held body (the metadata stays); True if there was one."""
        ...


class RelayJournal(Protocol):
    """Which recipients of a message the upstream already took: never deliver twice."""

    async def relayed(self, key: str) -> frozenset[str]:
        """Recipients of this message already accepted by the upstream (relay journal)."""
        ...

    async def record_relayed(
        self, key: str, recipients: Sequence[str], audit: Sequence[AuditRecord] = ()
    ) -> None: ...


class AuditTrail(Protocol):
    """The hash-chained trail (``gateway.core.auditchain``): appends are serialised."""

    async def append_audit(self, audit: Sequence[AuditRecord]) -> None: ...

    async def audit_entries(self, since: float | None = None) -> Sequence[Entry]:
        """Every entry at or after ``since``, oldest first: for verifying and exporting."""
        ...

    async def audit_query(self, query: AuditQuery) -> Sequence[Entry]:
        """The entries that match, in the query's order, at most ``query.limit``."""
        ...

    async def count_audit(self, query: AuditQuery) -> int: ...

    async def audit_events(self) -> Sequence[str]:
        """The kinds of event the trail holds, sorted."""
        ...

    async def verify_audit(self) -> tuple[int, Problem | None]:
        """How many entries the trail holds, and the first that breaks the hash chain."""
        ...

    async def audit_entry(self, seq: int) -> Entry | None:
        """Entry ``seq``, or None when the trail has none (to check a witnessed head)."""
        ...

    async def audit_head(self) -> tuple[int, str] | None:
        """The newest entry's number and hash."""
        ...


class NoticeOutbox(Protocol):
    """Notices waiting to be sent (to senders, reviewers), committed with what caused them."""

    async def queue_notices(
        self, notices: Sequence[NewNotice], audit: Sequence[AuditRecord] = ()
    ) -> None:
        """Queue notices that no hold's change carries (the audit head for its witnesses),
        with their audit entries, in one transaction."""
        ...

    async def due_notices(self, now: float, limit: int = 50) -> Sequence[Notice]:
        """Up to ``limit`` notices due, oldest first, claimed for this process, with the rest
        of their holds' due notices (one process sends a hold's, in order). Each carries the
        recipients the relay journal says were taken already (``Notice.taken``, written by
        an earlier version that journalled notices), read in the claim's transaction."""
        ...

    async def notice_sent(self, notice_id: str, audit: Sequence[AuditRecord] = ()) -> None:
        """The upstream took it: never sent again. The mark and its audit entries are one
        transaction, written at once after the upstream's reply; it is the notice's journal
        (a journal write before it would only stand where the mark stands)."""
        ...

    async def notices_sent(self, marks: Sequence[tuple[str, Sequence[AuditRecord]]]) -> None:
        """``notice_sent`` for several notices (id, audit entries), in one transaction: the
        marks of notices sent side by side share one commit."""
        ...

    async def notice_failed(self, notice_id: str, error: str, retry_at: float | None) -> None:
        """Not sent: tried again at ``retry_at`` (None: never, kept for an operator)."""
        ...


class ProbeResults(Protocol):
    """The last active probe of each domain (`gateway allowlist check --live`)."""

    async def record_probes(self, probes: Sequence[ProbeRecord]) -> None:
        """Keep these, each replacing its domain's previous one."""
        ...

    async def last_probes(self) -> Mapping[str, ProbeRecord]: ...


class DeliveryQueue(Protocol):
    """Messages the gateway delivers itself ([delivery] direct), retried until each recipient
    has an outcome. Claims are leases: a claimer that dies loses its entries when the lease
    runs out (or at once, when its process is seen gone)."""

    async def enqueue(
        self, new: NewQueued, audit: Sequence[AuditRecord] = ()
    ) -> tuple[Queued, bool]:
        """Durably store the message (encrypted, fsync'd) and its entry, due now, with its
        audit entries. Returns the entry and whether it was created now (False: an earlier
        delivery of the same message made it; ``audit`` is not written)."""
        ...

    async def queued(self, queue_id: str) -> Queued | None: ...

    async def queued_message(self, queue_id: str) -> bytes:
        """The decrypted message; KeyError once the entry is finished (its body is gone)."""
        ...

    async def queue_entries(self, finished: bool = False, limit: int = 200) -> Sequence[Queued]:
        """Entries still waiting (or, with ``finished``, every entry), oldest first."""
        ...

    async def claim_queued(
        self, now: float, lease_until: float, owner: str, limit: int = 20
    ) -> Sequence[Queued]:
        """Take the due entries nobody holds a live lease on, until ``lease_until``."""
        ...

    async def queue_progress(
        self,
        queue_id: str,
        owner: str,
        recipients: Sequence[QueuedRecipient],
        next_at: float,
        last_error: str,
        audit: Sequence[AuditRecord] = (),
        notices: Sequence[NewNotice] = (),
    ) -> Queued | None:
        """After an attempt by ``owner``: the recipients' new states, when to try again, with
        the audit entries and notices, in one transaction; the lease is given back. An entry
        with no recipient left pending is finished and its body deleted. None when ``owner``
        no longer holds the lease (another process took the entry over)."""
        ...

    async def retry_queued(self, queue_id: str, now: float) -> bool:
        """Make a waiting entry due at ``now``; False if there is no such waiting entry."""
        ...

    async def purge_queued(
        self,
        queue_id: str,
        audit: Sequence[AuditRecord] = (),
        notices: Sequence[NewNotice] = (),
    ) -> Queued | None:
        """Take a waiting entry out of the queue (its pending recipients purged, its body
        deleted), with the audit entries and notices; None if it is not waiting."""
        ...

    async def prune_queued(self, before: float) -> int:
        """Delete the entries finished before ``before`` ([review] retention), with their
        relay journal; how many. The audit trail keeps what became of them."""
        ...

    async def queue_depth(self) -> int:
        """How many entries are waiting."""
        ...

    async def next_queued_at(self) -> float | None:
        """When the earliest waiting entry is due."""
        ...


class SecureLinks(Protocol):
    """Links to held messages for recipients who are not reached securely. They are made with
    the hold's decision (``changes.SendLinks`` through ``Holds.update``); every change below is
    a compare-and-set, so two nodes serving the same recipient at once cannot both count one
    attempt or both send the "opened" notice."""

    async def link(self, link_id: str) -> Link | None: ...

    async def link_by_token(self, token_digest: str) -> Link | None: ...

    async def links_of(self, hold_id: str) -> Sequence[Link]:
        """The hold's links, in the order they were made."""
        ...

    async def link_code_sent(
        self,
        link_id: str,
        expect_sent: int,
        digest: str,
        at: float,
        expires_at: float,
        audit: Sequence[AuditRecord] = (),
        notices: Sequence[NewNotice] = (),
    ) -> Link | None:
        """A new code replaces the last (its digest, its expiry; sent + 1, sent_at = at), with
        the notice that carries it; None when ``sent`` is no longer ``expect_sent``."""
        ...

    async def link_code_entered(
        self,
        link_id: str,
        expect_attempts: int,
        outcome: CodeOutcome,
        at: float,
        audit: Sequence[AuditRecord] = (),
        notices: Sequence[NewNotice] = (),
    ) -> Link | None:
        """Record ``outcome`` (its attempts; locked_at = at when it locks the link; a right
        code is used up: its digest is cleared); None when the attempts are no longer
        ``expect_attempts``, or the code the outcome was judged against was used up meanwhile
        (read the link again and check again)."""
        ...

    async def link_opened(
        self,
        link_id: str,
        at: float,
        audit: Sequence[AuditRecord] = (),
        notices: Sequence[NewNotice] = (),
    ) -> Link | None:
        """The first verified view: opened_at = at, with the sender's notice; None when the
        link was opened before (nothing is written)."""
        ...

    async def revoke_link(
        self,
        link_id: str,
        at: float,
        by: str,
        audit: Sequence[AuditRecord] = (),
        notices: Sequence[NewNotice] = (),
    ) -> Link | None:
        """None when the link was already revoked."""
        ...

    async def unopened_links(self, made_before: float, limit: int = 50) -> Sequence[Link]:
        """Links made before ``made_before``, never opened, not revoked, not yet noticed."""
        ...

    async def link_unopened_noticed(
        self,
        link_id: str,
        at: float,
        audit: Sequence[AuditRecord] = (),
        notices: Sequence[NewNotice] = (),
    ) -> Link | None:
        """unopened_noticed_at = at, with the notices; None when it was already set."""
        ...

    async def codes_sent_to(self, address: str, since: float) -> int:
        """Codes sent to ``address`` since ``since``, over all its links (the portal's limit
        per address)."""
        ...


class HoldStore(
    Holds,
    RelayJournal,
    AuditTrail,
    NoticeOutbox,
    DeliveryQueue,
    ProbeResults,
    SecureLinks,
    Protocol,
):
    """The hold store as one service: holds, journal, trail, outbox and queue share a
    transaction."""

    async def close(self) -> None: ...


class PolicyCache(Protocol):
    """MTA-STS policies learned (RFC 8461 §5.1) and fetch failures, kept across restarts."""

    async def policy(self, domain: str) -> CachedPolicy | None: ...

    async def failure(self, domain: str) -> FetchFailure | None: ...

    async def entry(self, domain: str) -> tuple[CachedPolicy | None, FetchFailure | None]:
        """The domain's policy and its last fetch failure, read together: what a domain check
        plans from, in one trip to the store instead of two."""
        ...

    async def store_policy(self, cached: CachedPolicy) -> None: ...

    async def store_failure(self, domain: str, failure: FetchFailure) -> None: ...

    async def forget(self, domain: str | None = None) -> int:
        """Purge one domain's cached policy and failure, or all of them. Returns how many."""
        ...

    async def domains(self) -> Sequence[str]: ...

    async def close(self) -> None: ...
