"""The witness of the audit trail's head: where the trail ended, recorded outside the database.

The keyed chain shows an edited or deleted entry, but not that the newest entries were cut off
the end. ``gateway serve`` therefore logs the head (sequence and hash) at start, every
``[audit] head_interval`` and on SIGUSR1, and appends it to the witness file. A head lower than
the last one witnessed (by this process, or in the file from before a restart), or a witnessed
entry that is no longer the same, is an error in the log and counted in /metrics. With
``[audit] witnesses`` set, the head also goes to them in a short notice, at start and then
every ``[audit] witness_every``: a copy nobody with the database can reach. A copy of the
log or of the file kept elsewhere lets ``gateway audit verify --head SEQ:HASH`` prove the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from gateway import logs, metrics
from gateway.core.auditchain import Head, contains
from gateway.core.timefmt import iso_utc
from gateway.store.protocols import AuditTrail

WITNESS_FILE = "audit-witness.log"


# A line of the witness file: ``TIME SEQ:HASH``, and `` sent`` when it went to the witnesses.
SENT = "sent"

# Queues the head's notice to the witnesses ([audit] witnesses); None when there are none.
SendHead = Callable[[Head, float], Awaitable[None]]


def _lines(path: Path) -> list[list[str]]:
    with contextlib.suppress(FileNotFoundError):
        text = path.read_text(encoding="ascii", errors="replace")
        return [line.split() for line in reversed(text.splitlines()) if line.strip()]
    return []


def last_witnessed(path: Path) -> Head | None:
    """The last head in the witness file, if any."""
    for fields in _lines(path):
        with contextlib.suppress(ValueError, IndexError):
            return Head.parse(fields[1])
    return None


def last_sent(path: Path) -> float | None:
    """When a head last went to the witnesses, from the witness file."""
    for fields in _lines(path):
        if len(fields) > 2 and fields[2] == SENT:
            with contextlib.suppress(ValueError):
                return dt.datetime.fromisoformat(fields[0]).timestamp()
    return None


class Witness:
    def __init__(
        self,
        trail: AuditTrail,
        path: Path,
        clock: Callable[[], float] = time.time,
        send: SendHead | None = None,
        send_every: float = 86400.0,
    ) -> None:
        self._trail = trail
        self._path = path
        self._clock = clock
        self._log = logs.get("gateway.audit")
        self._seen = last_witnessed(path)
        self._send = send
        self._send_every = send_every
        self._sent_at = last_sent(path)

    async def observe(self, reason: str) -> Head | None:
        """Log the head and check it against the last one witnessed; the head, if any."""
        found = await self._trail.audit_head()
        head = Head(*found) if found is not None else None
        await self._check(head)
        if head is None:
            return None
        self._log.info("audit head", seq=head.seq, head=head.hash, reason=reason)
        metrics.AUDIT_HEAD.set(head.seq)
        now = self._clock()
        due = self._send is not None and (
            self._sent_at is None or now - self._sent_at >= self._send_every
        )
        if due and self._send is not None:
            await self._send(head, now)
            self._sent_at = now
            self._log.info("audit head sent to witnesses", seq=head.seq, head=head.hash)
        if head != self._seen or due:
            self._record(head, sent=due)
        self._seen = head
        return head

    async def _check(self, head: Head | None) -> None:
        seen = self._seen
        if seen is None:
            return
        last = head.seq if head is not None else 0
        if last < seen.seq:
            metrics.AUDIT_HEAD_PROBLEMS.labels("backwards").inc()
            self._log.error(
                "audit head went backwards",
                seq=last,
                head=head.hash if head else "",
                witnessed=str(seen),
                problem=contains(seen, None, last),
            )
            return
        problem = contains(seen, await self._trail.audit_entry(seen.seq), last)
        if problem is not None:
            metrics.AUDIT_HEAD_PROBLEMS.labels("rewritten").inc()
            self._log.error("audit head rewritten", witnessed=str(seen), problem=problem)

    def _record(self, head: Head, sent: bool = False) -> None:
        line = f"{iso_utc(self._clock())} {head}{' ' + SENT if sent else ''}\n".encode("ascii")
        self._path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)


async def keep(
    witness: Witness, interval: float, stop: asyncio.Event, asked: asyncio.Event
) -> None:
    """Observe the head at start, every ``interval`` seconds and whenever ``asked`` is set,
    until ``stop``."""
    log = logs.get("gateway.audit")
    reason = "start"
    while not stop.is_set():
        asked.clear()
        try:
            await witness.observe(reason)
        except Exception:  # the witness must outlive a locked or broken store; it runs again
            log.exception("audit head check failed")
        waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(asked.wait())]
        _, pending = await asyncio.wait(
            waits, timeout=interval, return_when=asyncio.FIRST_COMPLETED
        )
        for task in pending:
            task.cancel()
        reason = "asked" if asked.is_set() else "interval"
