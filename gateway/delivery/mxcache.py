"""Connections to MX hosts kept open after a delivery, for the next message to the same host.

A new TCP connection, STARTTLS handshake and certificate check per message cost more than the
message itself; Postfix keeps a connection cache for the same reason. A connection is kept
only for what it proved when it was made: it is filed under the ``Candidate`` it was opened
for (the MX host, the requirement the plan set for it, and for DANE the TLSA records its chain
matched), and a later message takes it only when its own plan, made from the facts of its own
time, asks the same of the same host. A connection that proved MTA-STS never carries a message
that needs DANE, nor one made for other TLSA records; what the audit trail says of each copy
(``Evidence``: host, address, TLS version, cipher, what authenticated the peer) is what that
connection established, and stays true for every message it carries.

Kept only while healthy and young: a connection is given back only after a transaction that
ended cleanly, and before it carries another it must answer RSET (RFC 5321 §4.1.1.5) with 250;
it is closed after ``max_messages`` messages, ``lifetime`` seconds since it was opened, or
``idle`` seconds unused (with QUIT, RFC 5321 §4.1.1.10), and at most ``per_host`` wait idle for
one candidate.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiosmtplib

from gateway.delivery.mxplan import Candidate
from gateway.delivery.transport import Evidence

# Postfix closes an idle cached connection after 2 s (smtp_connection_cache_time_limit) and
# stops reusing one after 300 s (smtp_connection_reuse_time_limit); a queue that drains in
# bursts a few seconds apart is worth a little more idle time than that.
IDLE_SECONDS = 5.0
LIFETIME_SECONDS = 300.0
MAX_MESSAGES = 100
PER_HOST = 20


@dataclass
class Connection:
    """One open connection and what it proved when it was made."""

    client: aiosmtplib.SMTP
    candidate: Candidate
    evidence: Evidence  # as the handshake established it; ``at`` is set per message
    opened: float
    idle_since: float = 0.0
    messages: int = 0
    reused: bool = False  # this transaction rides a connection an earlier one opened
    _expiry: asyncio.TimerHandle | None = field(default=None, repr=False)


class ConnectionCache:
    def __init__(
        self,
        idle: float = IDLE_SECONDS,
        lifetime: float = LIFETIME_SECONDS,
        max_messages: int = MAX_MESSAGES,
        per_host: int = PER_HOST,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._idle_seconds = idle
        self._lifetime = lifetime
        self._max_messages = max_messages
        self._per_host = per_host
        self._clock = clock
        self._idle: dict[Candidate, list[Connection]] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._closed = False
        self.opened = 0  # connections handed to the cache for the first time
        self.reused = 0  # transactions that rode a cached connection

    def open(self, client: aiosmtplib.SMTP, candidate: Candidate, evidence: Evidence) -> Connection:
        """A connection just made for ``candidate``, before its first transaction."""
        self.opened += 1
        return Connection(client, candidate, evidence, self._clock())

    async def take(self, candidate: Candidate) -> Connection | None:
        """An idle connection that proved what ``candidate`` asks, alive (it answered RSET),
        or None. The newest first: the one least likely to have been closed by the host."""
        waiting = self._idle.get(candidate, [])
        while waiting:
            connection = waiting.pop()
            self._stop_timer(connection)
            idle_for = self._clock() - connection.idle_since
            if not self._young(connection) or idle_for >= self._idle_seconds:
                self._quit_later(connection)
                continue
            if await _answers_rset(connection.client):
                connection.reused = True
                self.reused += 1
                return connection
        return None

    def give_back(self, connection: Connection) -> None:
        """After a transaction that ended cleanly: keep it for the next message, or close it
        when it is old, has carried enough, or enough wait already."""
        connection.messages += 1
        waiting = self._idle.setdefault(connection.candidate, [])
        full = len(waiting) >= self._per_host
        done = connection.messages >= self._max_messages or not self._young(connection)
        if full or done or self._closed or not connection.client.is_connected:
            self._quit_later(connection)
            return
        connection.idle_since = self._clock()
        loop = asyncio.get_running_loop()
        connection._expiry = loop.call_later(self._idle_seconds, self._expire, connection)
        waiting.append(connection)

    def idle_count(self, candidate: Candidate | None = None) -> int:
        if candidate is not None:
            return len(self._idle.get(candidate, []))
        return sum(len(waiting) for waiting in self._idle.values())

    async def close(self) -> None:
        """QUIT every idle connection, and each one given back from now on; wait for those
        already closing."""
        self._closed = True
        idle, self._idle = self._idle, {}
        for waiting in idle.values():
            for connection in waiting:
                self._stop_timer(connection)
                self._quit_later(connection)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    def _young(self, connection: Connection) -> bool:
        alive = connection.client.is_connected
        return alive and self._clock() - connection.opened < self._lifetime

    def _expire(self, connection: Connection) -> None:
        connection._expiry = None
        waiting = self._idle.get(connection.candidate, [])
        if connection in waiting:
            waiting.remove(connection)
            self._quit_later(connection)

    def _stop_timer(self, connection: Connection) -> None:
        if connection._expiry is not None:
            connection._expiry.cancel()
            connection._expiry = None

    def _quit_later(self, connection: Connection) -> None:
        task = asyncio.get_running_loop().create_task(quit_politely(connection.client))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)


async def _answers_rset(client: aiosmtplib.SMTP) -> bool:
    """RSET on an idle connection: 250 means the host still talks to us and no transaction
    is open. Anything else (a 421 at its idle timeout, a closed socket) ends it."""
    if not client.is_connected:
        return False
    try:
        await client.rset()  # raises on any reply but 250
    except (aiosmtplib.SMTPException, OSError):
        client.close()
        return False
    return True


async def quit_politely(client: aiosmtplib.SMTP) -> None:
    if not client.is_connected:
        return
    try:
        await client.quit()
    except (aiosmtplib.SMTPException, OSError):
        client.close()
