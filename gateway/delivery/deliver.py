"""The one delivery path: the filter, a release and the outbox all send through ``Delivery``.

Exactly once, per recipient: the relay journal (in the store) is read before a send and
written after it, so a retry (the sending MTA's after a 4xx, the sweep's after a crash) never
gives the upstream a second copy for a recipient it already took. The one gap is the one
RFC 5321 §6.1 accepts: a connection lost after DATA, before the upstream's answer, leaves us
not knowing, and the retry may duplicate. The outbox's store reads and writes a notice's
journal itself, in the transactions of its claim and of its outcome (``deliver_rest``): the
same order, read before and written after, without round trips of its own.

The trace fields (``Received:``, ``X-Safeguarding-Gateway:``) are prepended here, as bytes,
never by re-serialising the message (DKIM signatures over the original survive). What the
transport said comes back as one ``Result`` per recipient, its ``Outcome`` mapped once, in
``transport``.

For flagged mail (``Transaction.flagged``) the journal write also carries the proof of
delivery: one ``delivered`` audit entry per recipient taken, from the transport's ``Evidence``
(TRANSPORT-SECURITY.md, "Delivery"), so the trail's proof and the journal's "sent" are one
commit and cannot disagree. ``Report.proof`` hands the same to the caller (confirmations).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from gateway import logs
from gateway.audit import events
from gateway.core.headers import trace_headers
from gateway.core.timefmt import iso_utc, mail_date
from gateway.delivery.transport import (
    Evidence,
    Outcome,
    PeerAuth,
    Recipient,
    Reply,
    Sent,
    Transaction,
    Transport,
    failure_reply,
)
from gateway.errors import DeliveryFailed, StoreUnavailable
from gateway.store import AuditRecord


class Journal(Protocol):
    """The part of the store that remembers which recipients the upstream took."""

    async def relayed(self, key: str) -> frozenset[str]: ...

    async def record_relayed(
        self, key: str, recipients: Sequence[str], audit: Sequence[AuditRecord] = ()
    ) -> None: ...


@dataclass(frozen=True)
class Trace:
    """What the ``Received:`` field says of where the message came from, and the summary line
    of ``X-Safeguarding-Gateway:``."""

    helo: str
    client_ip: str
    protocol: str  # RFC 3848 / RFC 6531 §3.7.3: SMTP, ESMTP, UTF8SMTP
    queue_id: str
    summary: str
    message_id: str = ""  # for the proof of delivery in the audit trail
    hold_id: str = ""  # a release: the hold the proof belongs to
    comment: str = ""  # RFC 3848: the session's TLS version and cipher, the AUTH account
    client_name: str = ""  # the client's host name, when the MTA in front named it (XFORWARD)


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    reply: Reply | None = None  # None when accepted earlier
    earlier: bool = False  # accepted by an earlier send (the journal says so): not sent now


@dataclass(frozen=True)
class Report:
    """Per recipient of the transaction, in its order, what became of it."""

    results: Mapping[str, Result] = field(default_factory=dict)
    failure: DeliveryFailed | None = None  # the transaction failed as a whole
    reply: Reply | None = None  # the upstream's reply to DATA, if this send got that far
    # Flagged mail: per recipient taken in this send, the proof of delivery the trail keeps.
    proof: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def accepted(self) -> tuple[str, ...]:
        """Taken by the upstream, now or by an earlier send."""
        return tuple(a for a, r in self.results.items() if r.outcome is Outcome.ACCEPTED)

    @property
    def sent(self) -> tuple[str, ...]:
        """Taken by the upstream in this send."""
        return tuple(
            a for a, r in self.results.items() if r.outcome is Outcome.ACCEPTED and not r.earlier
        )

    @property
    def refusals(self) -> dict[str, Reply]:
        """Every recipient not taken, with the reply that says why (4xx or 5xx)."""
        return {
            a: r.reply
            for a, r in self.results.items()
            if r.outcome is not Outcome.ACCEPTED and r.reply is not None
        }


# Given the recipients the upstream took in this send, the audit entries that go with them
# into the journal, in the same transaction.
AuditOf = Callable[[Sequence[str]], Sequence[AuditRecord]]

_NO_ANSWER = Reply(451, "no answer for this recipient")


class Delivery:
    def __init__(self, transport: Transport, journal: Journal, hostname: str) -> None:
        self._transport = transport
        self._journal = journal
        self._hostname = hostname
        self._log = logs.get("gateway.delivery")

    async def deliver(
        self,
        transaction: Transaction,
        key: str,
        *,
        trace: Trace | None = None,
        delivered: Collection[str] = (),
        audit: AuditOf | None = None,
        journalled: frozenset[str] | None = None,
    ) -> Report:
        """Send ``transaction`` to those of its recipients that neither the journal under
        ``key`` nor ``delivered`` (known from elsewhere) says were taken already. A failure
        of the store's journal read propagates (sending blind could duplicate), except for
        unflagged mail when the shared store is unavailable (``_journalled``). ``journalled``
        is the journal under ``key`` as the caller read it just now (with a hold, in the same
        transaction): it is not read again."""
        if journalled is None:
            journalled = await self._journalled(transaction, key)
        done = set(delivered) | journalled
        report, accepted = await self._send(transaction, done, trace)
        if accepted:
            records = list(audit(accepted) if audit else ())
            hold_id = trace.hold_id if trace else ""
            records += [events.delivered(hold_id, p) for p in report.proof.values()]
            await self._record(key, accepted, records)
        return report

    async def deliver_rest(self, transaction: Transaction, taken: Collection[str]) -> Report:
        """Send ``transaction`` to those of its recipients not in ``taken``, for a caller
        whose store reads the journal with its own claim and writes it with its own outcome
        (the outbox: a notice's journal is read when it is claimed and written with its
        mark, one transaction each, instead of three more round trips). The caller then
        records ``Report.sent`` itself, in the transaction of its outcome."""
        report, _ = await self._send(transaction, taken, None)
        return report

    async def _send(
        self, transaction: Transaction, done: Collection[str], trace: Trace | None
    ) -> tuple[Report, tuple[str, ...]]:
        """The send itself, to the recipients not ``done``: what became of each, and the
        ones the upstream took now (for the journal)."""
        earlier = {
            r.address: Result(Outcome.ACCEPTED, earlier=True)
            for r in transaction.recipients
            if r.address in done
        }
        pending = tuple(r for r in transaction.recipients if r.address not in done)
        if not pending:
            return Report(_ordered(transaction, earlier)), ()
        try:
            sent = await self._transport.send(self._prepare(transaction, pending, trace))
        except DeliveryFailed as exc:
            reply = failure_reply(exc)
            failed = {r.address: Result(Outcome(exc.outcome), reply) for r in pending}
            return Report(_ordered(transaction, earlier | failed), failure=exc), ()
        proof = _proof(transaction, trace, sent) if transaction.flagged else {}
        results = _ordered(transaction, earlier | _results(pending, sent))
        return Report(results, reply=sent.reply, proof=proof), tuple(sent.accepted)

    async def close(self) -> None:
        await self._transport.close()

    async def _journalled(self, transaction: Transaction, key: str) -> frozenset[str]:
        """The recipients the journal says were taken. Unflagged mail stores nothing else, so
        a database that is down or too slow must not stop it: it is sent as if the journal
        were empty, at the cost of a possible duplicate on the MTA's retry (the same as a
        failed journal write, below). Flagged mail fails closed: the caller answers 451."""
        try:
            return await self._journal.relayed(key)
        except StoreUnavailable as exc:
            if transaction.flagged:
                raise
            self._log.warning(
                "relay journal unavailable, sending unflagged mail", key=key, error=str(exc)
            )
            return frozenset()

    def _prepare(
        self, transaction: Transaction, pending: tuple[Recipient, ...], trace: Trace | None
    ) -> Transaction:
        prefix = transaction.prefix
        if trace is not None:
            # Sent before the body by the transport, not prepended here: no copy of the body.
            prefix += trace_headers(
                helo=trace.helo,
                client_ip=trace.client_ip,
                hostname=self._hostname,
                protocol=trace.protocol,
                queue_id=trace.queue_id,
                date=mail_date(time.time()),
                summary=trace.summary,
                comment=trace.comment,
                client_name=trace.client_name,
            )
        return replace(transaction, recipients=pending, prefix=prefix)

    async def _record(
        self, key: str, accepted: Sequence[str], records: Sequence[AuditRecord]
    ) -> None:
        # One transaction: the journal's "sent" and the trail's proof cannot disagree.
        try:
            await self._journal.record_relayed(key, accepted, records)
        except StoreUnavailable as exc:  # the database is down: said once a message, briefly
            self._log.warning(
                "relay journal write failed", key=key, recipients=accepted, error=str(exc)
            )
        except Exception:
            # Delivered all the same: the only cost is a possible duplicate on a retry.
            self._log.exception("relay journal write failed", key=key, recipients=accepted)


def _results(pending: Sequence[Recipient], sent: Sent) -> dict[str, Result]:
    results = {}
    for recipient in pending:
        address = recipient.address
        if address in sent.accepted:
            results[address] = Result(Outcome.ACCEPTED, sent.reply or Reply(250, ""))
        else:
            reply = sent.refused.get(address, _NO_ANSWER)
            refused = reply.outcome is not Outcome.ACCEPTED
            results[address] = Result(reply.outcome if refused else Outcome.DEFERRED, reply)
    return results


def _proof(transaction: Transaction, trace: Trace | None, sent: Sent) -> dict[str, dict[str, Any]]:
    """Per accepted recipient, how its copy left (TRANSPORT-SECURITY.md, "Delivery"). What
    the transport did not say is recorded as unknown ("none"), never guessed."""
    evidence = sent.evidence
    how: dict[str, Any] = {
        "route": route_of(evidence),
        "host": evidence.host if evidence else "",
        "address": evidence.address if evidence else "",
        "port": evidence.port if evidence else 0,
        "tls_version": evidence.tls_version if evidence else "",
        "cipher": evidence.cipher if evidence else "",
        "authenticated": (evidence.authenticated if evidence else PeerAuth.NONE).value,
        "reply": str(sent.reply) if sent.reply else "",
        "at": iso_utc(evidence.at if evidence and evidence.at else time.time()),
        "skipped": list(sent.skipped),
    }
    queue_id = trace.queue_id if trace else ""
    message_id = trace.message_id if trace else ""
    return {
        address: {"queue_id": queue_id, "message_id": message_id, "recipient": address, **how}
        for address in sent.accepted
    }


def route_of(evidence: Evidence | None) -> str:
    """``mx`` or ``smarthost``. Flagged mail leaves directly only to an MX host that DANE or
    MTA-STS authenticated (RFC 7672 §3, RFC 8461 §4): any other copy went to the smarthost,
    and so did one whose transport gave no evidence (the direct transport always does)."""
    if evidence is not None and evidence.authenticated in _MX_AUTH:
        return ROUTE_MX
    return ROUTE_SMARTHOST


ROUTE_MX = "mx"
ROUTE_SMARTHOST = "smarthost"
_MX_AUTH = frozenset({PeerAuth.DANE_EE, PeerAuth.DANE_TA, PeerAuth.MTA_STS})


def _ordered(transaction: Transaction, results: dict[str, Result]) -> dict[str, Result]:
    return {r.address: results[r.address] for r in transaction.recipients}
