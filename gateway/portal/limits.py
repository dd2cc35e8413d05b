"""Request limits per client address and per link, kept in memory on each node.

In memory, not in the store: they only blunt floods (a script hammering one link, or one
client trying many). The limits that protect a link are in the store and shared by every
node (``portal.service``: attempts, codes per link, codes per address), and a token cannot be
guessed (256 bits), so a client that spreads its requests over several nodes gains nothing
that matters; a database write per request would cost more than it protects.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

MAX_KEYS = 50_000  # beyond this many clients the oldest are forgotten: memory stays bounded


class Window:
    """At most ``limit`` hits per key in any ``window`` seconds."""

    def __init__(
        self, limit: int, window: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._hits: dict[str, deque[float]] = {}

    def allow(self, key: str) -> bool:
        """Count a hit for ``key``; False (and not counted) when it is over the limit."""
        now = self._clock()
        hits = self._hits.pop(key, None) or deque()
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        allowed = len(hits) < self.limit
        if allowed:
            hits.append(now)
        self._hits[key] = hits  # re-inserted: the dict's order is the keys' last use
        while len(self._hits) > MAX_KEYS:
            del self._hits[next(iter(self._hits))]
        return allowed


class Limits:
    """Every request counts against its client address; every form sent, against its link."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_client = Window(120, 60.0, clock)
        self.per_link = Window(20, 60.0, clock)

    def request(self, client: str) -> bool:
        return self.per_client.allow(client)

    def form(self, token_digest: str) -> bool:
        return self.per_link.allow(token_digest)
