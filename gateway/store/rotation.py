"""Moving every sealed body to the store's current key (``gateway store rotate-key``).

Every body is re-sealed on its own, in its own small transaction, and only if it still is what
was read (the SQLite writer lock, or a compare-and-swap ``UPDATE ... WHERE body = old`` on
PostgreSQL): a hold purged, a queue entry finished or a notice sent meanwhile stays as the
gateway left it. Killed at any point, the store holds each body under one key of the ring or the
other, and a second run picks up what the first did not reach; the gateway keeps reading (the
ring opens both) and writing (under the current key) the whole time.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from gateway.store.crypto import blob_key_id


@dataclass
class Resealed:
    """What one pass found: bodies moved now, already under the current key, and those no
    key of the ring opens (their owners)."""

    moved: int = 0
    current: int = 0
    unreadable: list[str] = field(default_factory=list)


@dataclass
class KeyCensus:
    """Which keys the store's bodies are sealed under: key id (None: a version 1 blob, from
    before key ids) -> count."""

    keys: Counter[str | None] = field(default_factory=Counter)

    def count(self, blob: bytes) -> None:
        self.keys[blob_key_id(blob)] += 1

    def needed(self) -> set[str | None]:
        return set(self.keys)
