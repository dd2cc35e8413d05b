"""The audit trail's hash chain: each entry carries the hash of the one before it.

Editing an entry changes its hash; deleting one breaks the link of the next; both are found by
``verify``, which names the first entry that does not fit. The chain cannot tell that the
newest entries were cut off the end: the gateway logs each new head hash, so a copy of the
log kept elsewhere is the witness for the tail.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64


@dataclass(frozen=True)
class Entry:
    seq: int
    at: float  # seconds since the epoch
    event: str
    hold_id: str
    actor: str
    data: Mapping[str, Any]
    prev: str
    hash: str


def digest(
    seq: int, at: float, event: str, hold_id: str, actor: str, data: Mapping[str, Any], prev: str
) -> str:
    """SHA-256 over a canonical JSON form (sorted keys, no spaces, UTF-8)."""
    body = json.dumps(
        [seq, repr(at), event, hold_id, actor, data, prev],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def seal(
    seq: int, at: float, event: str, hold_id: str, actor: str, data: Mapping[str, Any], prev: str
) -> Entry:
    return Entry(
        seq,
        at,
        event,
        hold_id,
        actor,
        data,
        prev,
        digest(seq, at, event, hold_id, actor, data, prev),
    )


@dataclass(frozen=True)
class Problem:
    seq: int
    what: str

    def __str__(self) -> str:
        return f"entry {self.seq}: {self.what}"


def verify(entries: Iterable[Entry]) -> Problem | None:
    """The first entry that was edited, or that follows a deleted one; None if all fit."""
    expected_seq, prev = 1, GENESIS
    for entry in entries:
        if entry.seq != expected_seq:
            return Problem(expected_seq, f"missing (the next entry is {entry.seq})")
        if entry.prev != prev:
            return Problem(entry.seq, "does not follow the entry before it")
        actual = digest(
            entry.seq, entry.at, entry.event, entry.hold_id, entry.actor, entry.data, entry.prev
        )
        if actual != entry.hash:
            return Problem(entry.seq, "was changed after it was written")
        expected_seq, prev = entry.seq + 1, entry.hash
    return None
