"""How much mail one process holds in memory at once: a bound on DATA phases and large messages.

Every message is read whole into memory and kept until the reply to its end of DATA (the
filter, the hold store and the relay all take it as bytes), in a few copies. So memory follows
the number of messages between their 354 and their reply, times their size. Two bounds, per
process ([smtp] workers processes each have their own):

* ``max_concurrent_data`` DATA phases. A session over it waits *before* its 354, so its client
  sends nothing yet (RFC 5321 §3.3: the message follows the 354), holding nothing of ours;
  after ``data_wait_timeout`` it gets 451 4.3.2 (RFC 3463 §3.3: the system is not accepting
  messages now) and the transaction is reset, so the session goes on and the MTA in front
  retries later. Small messages then take at most ``max_concurrent_data`` x
  ``large_message_threshold``.
* ``max_concurrent_large`` large messages. Once a message's data passes
  ``large_message_threshold``, the session reads no more of it (the client's bytes wait in the
  kernel's socket buffers: TCP flow control) until it holds one of these slots, kept until its
  reply. A message of ``max_message_size`` needs one slot, never more, and a session holding
  one waits for nothing but its own message: no deadlock. One that waits past
  ``data_wait_timeout`` is told 421 4.3.2 and the connection closed: nothing was accepted, so
  the client keeps the message and retries.

Why not a spool file: what the filter, the store and the relay take is the message in memory,
so a spool would only postpone the copy; the slots bound it without writing it twice.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from gateway.smtp.reply import SmtpReply

if TYPE_CHECKING:
    from gateway.config.settings import SmtpSettings

# RFC 3463 §3.3: X.3.2 "System not accepting network messages": temporary, try again later.
BUSY = SmtpReply(451, "4.3.2", "Too many messages in progress, try again later")
# For a session that was already sending its message: the connection ends (RFC 5321 §3.8).
BUSY_CLOSING = SmtpReply(421, "4.3.2", "Too many large messages in progress, try again later")


class Slots:
    """A count of permits handed out in arrival order; ``acquire`` gives up after a time."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.in_use = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def acquire(self, wait: float) -> bool:
        """Take a permit, waiting at most ``wait`` seconds: False if none came. True means
        the caller holds a permit and must ``release`` it, even if it is being cancelled."""
        if self.in_use < self.count and not self._waiters:
            self.in_use += 1
            return True
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            # A permit handed over just as the time runs out still counts (wait_for returns
            # the result of a future that is done), so none is ever lost.
            await asyncio.wait_for(waiter, wait)
        except TimeoutError:
            return False
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)
        return True

    def release(self) -> None:
        """Give the permit back: to the first waiter still waiting, or to the pool."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # in_use stays: the permit changes hands
                return
        self.in_use -= 1


class DataBudget:
    """The bounds of one process, shared by all its sessions (see the module docstring)."""

    def __init__(
        self,
        max_concurrent_data: int,
        max_concurrent_large: int,
        large_message_threshold: int,
        wait_timeout: float,
        after_large: Callable[[], None] | None = None,
    ) -> None:
        self.data = Slots(max_concurrent_data)
        self.large = Slots(min(max_concurrent_large, max_concurrent_data))
        self.threshold = large_message_threshold
        self.wait_timeout = wait_timeout
        # Called when the last large message in progress is done, its memory free: the
        # runtime gives the allocator's free pages back (gateway.runtime.allocator).
        self.after_large = after_large

    @classmethod
    def of(cls, smtp: SmtpSettings, after_large: Callable[[], None] | None = None) -> DataBudget:
        return cls(
            smtp.max_concurrent_data,
            smtp.max_concurrent_large,
            smtp.large_message_threshold,
            smtp.data_wait_timeout,
            after_large,
        )

    def large_done(self) -> None:
        self.large.release()
        if self.large.in_use == 0 and self.after_large is not None:
            self.after_large()

    def meter(self, flow: Flow) -> Meter:
        return Meter(self, flow)


class Flow(Protocol):
    """What a meter needs of its session."""

    def pause(self) -> None:
        """Stop reading from the client (the transport's pause_reading)."""

    def resume(self) -> None:
        """Read from the client again."""

    def feed(self, data: bytes) -> None:
        """Pass bytes kept back on to the session's reader, in order."""

    def refuse(self) -> None:
        """No large slot came in time: tell the client (421) and close the connection."""


class Meter:
    """One DATA phase's bytes on their way from the transport to the session's reader.

    ``received`` passes bytes on (returns them) until the threshold; past it, without a large
    slot, it keeps them back, pauses the transport and asks for a slot; once it has one it
    feeds the kept bytes and resumes; if the wait runs out, the flow refuses the message. At
    most what one or two reads of the transport bring stays kept back: the transport is paused
    as soon as the threshold passes."""

    def __init__(self, budget: DataBudget, flow: Flow) -> None:
        self._budget = budget
        self._flow = flow
        self.size = 0
        self.large = False  # holds a large slot
        self.refused = False
        self._closed = False
        self._held: list[bytes] = []
        self._asking: asyncio.Task[None] | None = None

    def received(self, data: bytes) -> bytes | None:
        """``data`` to pass on now, or None when it is kept back for a large slot."""
        if self.refused or self._closed:
            return None  # the connection is closing: nothing more is read
        self.size += len(data)
        if self.large or (self.size <= self._budget.threshold and not self._held):
            return data
        self._held.append(data)
        self._flow.pause()
        if self._asking is None:
            self._asking = asyncio.get_running_loop().create_task(self._ask())
        return None

    async def _ask(self) -> None:
        admitted = await self._budget.large.acquire(self._budget.wait_timeout)
        if admitted and self._closed:  # handed over as the phase ended
            self._budget.large.release()
        elif admitted:
            self.large = True
            held, self._held = self._held, []
            for data in held:  # before resuming: the bytes keep their order
                self._flow.feed(data)
            self._flow.resume()
        else:
            self.refused = True
            self._held = []
            self._flow.refuse()

    def close(self) -> None:
        """The end of the DATA phase (its reply sent, or the connection gone): the large slot
        goes back, and nothing more is kept."""
        self._closed = True
        self._held = []
        if self._asking is not None and not self._asking.done():
            self._asking.cancel()
        if self.large:
            self.large = False
            self._budget.large_done()
