"""The outbox: notices queued in the store with their event, sent through the one delivery
path (so a notice, too, reaches each of its recipients once).

A batch's notices go out side by side, event by event: the notices of one hold (or of one
event without a hold: a bounce, a confirmation) one after another, in the order they were
queued, so a hold's notices reach the trail and their recipients in the order of what
happened to it; different holds' notices at once, as many as the relay keeps connections
(``[relay] max_connections``), so a burst of holds is told about while the upstream answers
each notice, not one round trip after another.

Each notice costs the store one write after its send: the "sent" mark with its audit entry,
and the marks of notices sent side by side share one transaction (``Marks``). The relay
journal's part (which recipients were taken) is read with the claim, the batch's one read,
and the mark is the journal's write (``NoticeOutbox.notice_sent``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from gateway import logs
from gateway.audit import events as audit
from gateway.delivery.deliver import Delivery
from gateway.delivery.transport import Recipient, Transaction, failure_reply
from gateway.store import AuditRecord, HoldStore, Notice


class Outbox:
    """Sends queued notices; a failure is retried with back-off."""

    def __init__(self, store: HoldStore, delivery: Delivery, concurrency: int = 1) -> None:
        """``concurrency``: how many events' notices are sent at once (the relay's pool)."""
        self._store = store
        self._delivery = delivery
        self._concurrency = max(1, concurrency)
        self._marks = Marks(store)
        self._log = logs.get("gateway.notify")

    async def drain(self, now: float) -> int:
        """Send every notice due, batch after batch, until none is left (a burst of holds
        must not leave its notices for later sweeps)."""
        sent = 0
        while True:
            batch = await self._store.due_notices(now, BATCH)
            sent += await self._send_batch(batch, now)
            if len(batch) < BATCH:
                return sent

    async def _send_batch(self, batch: Sequence[Notice], now: float) -> int:
        """Send ``batch``, its events side by side, each event's notices in their order. A
        store error (a mark that could not be written) is raised once every event has ended,
        for the sweep to retry: the notices left behind stay claimed until their lease ends,
        and their marks say which were sent."""
        slots = asyncio.Semaphore(self._concurrency)

        async def send_event(notices: list[Notice]) -> int:
            async with slots:
                sent = 0
                for notice in notices:
                    sent += await self._send(notice, now)
                return sent

        events = by_event(batch)
        if len(events) == 1:  # the common case of a lone hold: no task of its own
            return await send_event(events[0])
        results = await asyncio.gather(*(send_event(e) for e in events), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return sum(r for r in results if isinstance(r, int))

    async def _send(self, notice: Notice, now: float) -> int:
        """Send one notice; 1 if the upstream took it. A failure is kept for a retry with
        back-off (temporary) or for an operator to read (permanent); either way the next
        notice is sent after it, so one bad address never holds up anyone else's notice."""
        unsendable = _unsendable(notice.recipients)
        if unsendable:
            await self._give_up(notice, f"cannot be encoded for SMTP: {unsendable}")
            return 0
        smtputf8 = not all(r.isascii() for r in (notice.sender, *notice.recipients))
        transaction = Transaction(
            sender=notice.sender,
            recipients=tuple(Recipient(r) for r in notice.recipients),
            data=notice.message,
            # RFC 6531 §3.4: a non-ASCII mailbox only in a transaction that says SMTPUTF8.
            mail_options=("SMTPUTF8",) if smtputf8 else (),
            smtputf8=smtputf8,
        )
        try:
            report = await self._delivery.deliver_rest(transaction, notice.taken)
        except UnicodeError as exc:
            await self._give_up(notice, f"cannot be encoded for SMTP: {exc}")
            return 0
        except Exception as exc:  # a transport bug: try again later
            later = now + _backoff(notice.attempts)
            await self._store.notice_failed(notice.id, f"not sent: {exc!r}", later)
            self._log.exception("notice not sent", notice=notice.kind, hold_id=notice.hold_id)
            return 0
        if report.failure is not None:
            upstream = str(failure_reply(report.failure))
            retry = now + _backoff(notice.attempts) if report.failure.temporary else None
            await self._store.notice_failed(notice.id, upstream, retry)
            self._log.warning(
                "notice not sent",
                notice=notice.kind,
                hold_id=notice.hold_id,
                upstream=upstream,
                retry=retry is not None,
            )
            return 0
        if not report.accepted:
            refusals = report.refusals
            replies = "; ".join(f"{a}: {r}" for a, r in refusals.items())
            temporary = any(report.results[a].outcome.temporary for a in refusals)
            retry = now + _backoff(notice.attempts) if temporary else None
            await self._store.notice_failed(notice.id, replies, retry)
            self._log.warning(
                "notice refused", notice=notice.kind, hold_id=notice.hold_id, upstream=replies
            )
            return 0
        accepted = list(report.accepted)
        await self._marks.mark(
            notice.id, [audit.notice_sent(notice.kind, notice.hold_id, accepted)]
        )
        self._log.info("notice sent", notice=notice.kind, hold_id=notice.hold_id, to=accepted)
        return 1

    async def _give_up(self, notice: Notice, why: str) -> None:
        """Mark ``notice`` failed for good: it stays in the outbox, with ``why``, for an
        operator, and is never retried."""
        await self._store.notice_failed(notice.id, why, None)
        self._log.error(
            "notice cannot be sent", notice=notice.kind, hold_id=notice.hold_id, reason=why
        )


class Marks:
    """The "sent" marks of notices sent side by side, written together: a mark made while
    another write is under way waits for it, then goes with every other mark made meanwhile
    in one transaction (``notices_sent``). The notices' marks then take one store connection
    and one commit at a time, not one each beside the holds' writes (on PostgreSQL, each
    with the audit trail's lock); a mark still waits for at most one write before its own."""

    def __init__(self, store: HoldStore) -> None:
        self._store = store
        self._waiting: list[tuple[str, list[AuditRecord], asyncio.Future[None]]] = []
        self._writing = False

    async def mark(self, notice_id: str, records: list[AuditRecord]) -> None:
        """Returns once the mark is committed; raises what kept it out."""
        done = asyncio.get_running_loop().create_future()
        self._waiting.append((notice_id, records, done))
        if not self._writing:
            self._writing = True
            try:
                await self._write_waiting()
            finally:
                self._writing = False
        await done

    async def _write_waiting(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                await self._store.notices_sent([(nid, records) for nid, records, _ in batch])
            except Exception as exc:
                for *_, done in batch:
                    done.set_exception(exc)
            except BaseException:  # cancelled: the marks not written fail with it
                for *_, done in batch + self._waiting:
                    done.cancel()
                self._waiting = []
                raise
            else:
                for *_, done in batch:
                    done.set_result(None)


BATCH = 50


def by_event(batch: Sequence[Notice]) -> list[list[Notice]]:
    """``batch`` (oldest first) as its events' notices, each list in the batch's order: a
    hold's notices together, whatever event queued them (its held, decision and link
    notices must keep their order); a notice without a hold with those queued at the same
    moment (the store gives one event's notices one ``created_at``)."""
    events: dict[tuple[str, float], list[Notice]] = {}
    for notice in batch:
        key = (notice.hold_id, 0.0) if notice.hold_id else ("", notice.created_at)
        events.setdefault(key, []).append(notice)
    return list(events.values())


def _unsendable(addresses: Sequence[str]) -> str:
    """The first address no SMTP command can carry (a control character, a lone surrogate
    that UTF-8 cannot encode), shown escaped; "" if there is none."""
    for address in addresses:
        try:
            address.encode("utf-8")
        except UnicodeError:
            return ascii(address)
        if any(ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 for ch in address):
            return ascii(address)
    return ""


def _backoff(attempts: int) -> float:
    return float(min(60 * 2**attempts, 3600))
