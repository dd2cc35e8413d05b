"""Small stand-ins for the adapter tests: a clock, a resolver table for the policy fetcher, and
a recording MockTransport handler for httpx."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence

import httpx

from gateway.core.model import DnsAnswer, DnsStatus

START = 1_700_000_000.0


class FakeClock:
    """A clock that moves only when told to: ``clock()`` is now, ``clock.advance(300)``."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class StubResolver:
    """Answers ``addresses()`` from a table, for tests of the fetcher alone. A name maps to a
    list of addresses (a found, unauthenticated answer) or to a whole DnsAnswer; absent names
    are NXDOMAIN."""

    trusted = False

    def __init__(self, table: Mapping[str, Sequence[str] | DnsAnswer[str]]) -> None:
        self.table = dict(table)
        self.asked: list[str] = []

    async def addresses(self, name: str) -> DnsAnswer[str]:
        self.asked.append(name)
        entry = self.table.get(name)
        if entry is None:
            return DnsAnswer(DnsStatus.NXDOMAIN)
        if isinstance(entry, DnsAnswer):
            return entry
        return DnsAnswer(DnsStatus.FOUND, tuple(entry))


Reply = httpx.Response | Exception
Handler = Callable[[httpx.Request], Reply | Awaitable[Reply]]


class RecordingHandler:
    """A MockTransport handler that records each request and answers through ``reply``, which
    may return a response, return (or raise) an exception, or be a coroutine function."""

    def __init__(self, reply: Handler) -> None:
        self.reply = reply
        self.requests: list[httpx.Request] = []
        self.in_flight = 0
        self.max_in_flight = 0

    @property
    def calls(self) -> int:
        return len(self.requests)

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            result = self.reply(request)
            if isinstance(result, Awaitable):
                result = await result
        finally:
            self.in_flight -= 1
        if isinstance(result, Exception):
            raise result
        return result


class ChunkedBody(httpx.AsyncByteStream):
    """A response body streamed in chunks with no Content-Length, that counts what the client
    actually pulled and whether it closed the stream."""

    def __init__(self, total: int, chunk: int = 4096, pause: float = 0.0) -> None:
        self.total = total
        self.chunk = chunk
        self.pause = pause
        self.sent = 0
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self.sent < self.total:
            if self.pause:
                await asyncio.sleep(self.pause)
            size = min(self.chunk, self.total - self.sent)
            self.sent += size
            yield b"x" * size

    async def aclose(self) -> None:
        self.closed = True


__all__ = ["START", "ChunkedBody", "FakeClock", "RecordingHandler", "StubResolver"]
