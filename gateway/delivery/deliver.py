"""The one delivery path: the filter, a release and the outbox all send through ``Delivery``.

Exactly once, per recipient: the relay journal (in the store) is read before a send and
written after it, so a retry (the sending MTA's after a 4xx, the sweep's after a crash) never
gives the upstream a second copy for a recipient it already took. The one gap is the one
RFC 5321 §6.1 accepts: a connection lost after DATA, before the upstream's answer, leaves us
not knowing, and the retry may duplicate.

The trace fields (``Received:``, ``X-Safeguarding-Gateway:``) are prepended here, as bytes,
never by re-serialising the message (DKIM signatures over the original survive). What the
transport said comes back as one ``Result`` per recipient, its ``Outcome`` mapped once, in
``transport``.
"""

from __future__ import annotations

import email.utils
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from gateway import logs
from gateway.core.headers import trace_headers
from gateway.delivery.transport import (
    Outcome,
    Recipient,
    Reply,
    Sent,
    Transaction,
    Transport,
    failure_reply,
)
from gateway.errors import DeliveryFailed
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
    message_id: str = ""  # the message's Message-ID, for the proof of delivery in the trail


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
    ) -> Report:
        """Send ``transaction`` to those of its recipients that neither the journal under
        ``key`` nor ``delivered`` (known from elsewhere) says were taken already. A failure
        of the store's journal read propagates: sending blind could duplicate."""
        done = set(delivered) | await self._journal.relayed(key)
        earlier = {
            r.address: Result(Outcome.ACCEPTED, earlier=True)
            for r in transaction.recipients
            if r.address in done
        }
        pending = tuple(r for r in transaction.recipients if r.address not in done)
        if not pending:
            return Report(_ordered(transaction, earlier))
        try:
            sent = await self._transport.send(self._prepare(transaction, pending, trace))
        except DeliveryFailed as exc:
            reply = failure_reply(exc)
            failed = {r.address: Result(Outcome(exc.outcome), reply) for r in pending}
            return Report(_ordered(transaction, earlier | failed), failure=exc)
        if sent.accepted:
            await self._record(key, sent.accepted, audit)
        return Report(_ordered(transaction, earlier | _results(pending, sent)), reply=sent.reply)

    async def close(self) -> None:
        await self._transport.close()

    def _prepare(
        self, transaction: Transaction, pending: tuple[Recipient, ...], trace: Trace | None
    ) -> Transaction:
        data = transaction.data
        if trace is not None:
            prefix = trace_headers(
                helo=trace.helo,
                client_ip=trace.client_ip,
                hostname=self._hostname,
                protocol=trace.protocol,
                queue_id=trace.queue_id,
                date=email.utils.formatdate(usegmt=True),
                summary=trace.summary,
            )
            data = prefix + data
        return replace(transaction, recipients=pending, data=data)

    async def _record(self, key: str, accepted: Sequence[str], audit: AuditOf | None) -> None:
        try:
            await self._journal.record_relayed(key, accepted, audit(accepted) if audit else ())
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


def _ordered(transaction: Transaction, results: dict[str, Result]) -> dict[str, Result]:
    return {r.address: results[r.address] for r in transaction.recipients}
