"""The witness of the audit trail's head: where the trail ended, recorded outside the database.

The keyed chain shows an edited or deleted entry, but not that the newest entries were cut off
the end. ``gateway serve`` therefore logs the head (sequence and hash) at start, every
``[audit] head_interval`` and on SIGUSR1, and appends it to the witness file. A head lower than
the last one witnessed (by this process, or in the file from before a restart), or a witnessed
entry that is no longer the same, is an error in the log and counted in /metrics. A copy of the
log or of the file kept elsewhere lets ``gateway audit verify --head SEQ:HASH`` prove the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path

from gateway import logs, metrics
from gateway.core.auditchain import Head, contains
from gateway.core.timefmt import iso_utc
from gateway.store.protocols import AuditTrail

WITNESS_FILE = "audit-witness.log"


def last_witnessed(path: Path) -> Head | None:
    """The last head in the witness file (lines of ``TIME SEQ:HASH``), if any."""
    with contextlib.suppress(FileNotFoundError):
        for line in reversed(path.read_text(encoding="ascii", errors="replace").splitlines()):
            with contextlib.suppress(ValueError):
                return Head.parse(line.split()[-1])
    return None


class Witness:
    def __init__(
        self, trail: AuditTrail, path: Path, clock: Callable[[], float] = time.time
    ) -> None:
        self._trail = trail
        self._path = path
        self._clock = clock
        self._log = logs.get("gateway.audit")
        self._seen = last_witnessed(path)

    async def observe(self, reason: str) -> Head | None:
        """Log the head and check it against the last one witnessed; the head, if any."""
        found = await self._trail.audit_head()
        head = Head(*found) if found is not None else None
        await self._check(head)
        if head is None:
            return None
        self._log.info("audit head", seq=head.seq, head=head.hash, reason=reason)
        metrics.AUDIT_HEAD.set(head.seq)
        if head != self._seen:
            self._record(head)
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

    def _record(self, head: Head) -> None:
        line = f"{iso_utc(self._clock())} {head}\n".encode("ascii")
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
