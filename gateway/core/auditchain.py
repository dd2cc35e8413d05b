"""The audit trail's chain: each entry carries a MAC of itself and of the entry before it.

The MAC is HMAC-SHA256 under the audit key, which is kept outside the database. Without the
key, an entry cannot be edited and every later one re-sealed: ``verify`` names the first entry
that does not fit. What the chain cannot show by itself is that the newest entries were cut
off the end; a head (sequence and MAC) witnessed elsewhere does (``contains``).

Trails written before the chain was keyed were chained by plain SHA-256, which anyone can
recompute. They are kept as they are (their hashes may have been witnessed already), and the
first keyed entry, a ``chain-keyed`` entry naming the last of them, ties them to the key: a
change to an old entry breaks its link to that entry. Unkeyed entries anywhere else are refused.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64
# The event that ends the unkeyed prefix of a trail migrated from before the key.
KEYED = "chain-keyed"


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


# Made once: ``json.dumps`` with options builds a new encoder for every call. The options are
# the canonical form's; strings outside the data are encoded by the same C function the
# encoder uses for ``ensure_ascii=False``, so the bytes are those of one ``json.dumps`` of the
# whole entry (``tests/core/test_auditchain_bytes.py`` pins them).
_DATA = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
_string = json.encoder.encode_basestring
# The C encoder ``_DATA.encode`` builds on every call, built once with its settings; without
# the circular-reference check, so data that loops fails here and is encoded again by _DATA,
# which raises the ValueError it always did (as ``gateway.logs`` does for log lines).
_make_c_encoder: Any = getattr(json.encoder, "c_make_encoder", None)
_C_DATA: Any = (
    _make_c_encoder(None, _DATA.default, _string, None, ":", ",", True, False, True)
    if _make_c_encoder is not None
    else None
)


def encode_data(data: Mapping[str, Any]) -> str:
    """An entry's data in the canonical form: encoded once, for the MAC and for the row."""
    if _C_DATA is not None:
        try:
            return "".join(_C_DATA(data, 0))
        except Exception:  # noqa: S110 - the standard encoder says what is wrong, as before
            pass
    return _DATA.encode(data)


def canonical(
    seq: int,
    at: float,
    event: str,
    hold_id: str,
    actor: str,
    data: Mapping[str, Any],
    prev: str,
    *,
    encoded: str | None = None,
) -> bytes:
    """The canonical JSON form (sorted keys, no spaces, UTF-8) that both rules cover:
    ``[seq, repr(at), event, hold_id, actor, data, prev]``. ``encoded`` is ``encode_data(data)``
    when the caller has it already."""
    text = encode_data(data) if encoded is None else encoded
    body = (
        f"[{int(seq)},{_string(repr(at))},{_string(event)},{_string(hold_id)},"
        f"{_string(actor)},{text},{_string(prev)}]"
    )
    return body.encode("utf-8")


def mac(
    key: bytes,
    seq: int,
    at: float,
    event: str,
    hold_id: str,
    actor: str,
    data: Mapping[str, Any],
    prev: str,
    *,
    encoded: str | None = None,
) -> str:
    """HMAC-SHA256 under ``key`` over the canonical form: the rule of every new entry."""
    body = canonical(seq, at, event, hold_id, actor, data, prev, encoded=encoded)
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def legacy_digest(
    seq: int, at: float, event: str, hold_id: str, actor: str, data: Mapping[str, Any], prev: str
) -> str:
    """Plain SHA-256 over the canonical form: the rule of entries from before the key."""
    return hashlib.sha256(canonical(seq, at, event, hold_id, actor, data, prev)).hexdigest()


def seal(
    seq: int,
    at: float,
    event: str,
    hold_id: str,
    actor: str,
    data: Mapping[str, Any],
    prev: str,
    *,
    key: bytes,
    encoded: str | None = None,
) -> Entry:
    sealed = mac(key, seq, at, event, hold_id, actor, data, prev, encoded=encoded)
    return Entry(seq, at, event, hold_id, actor, data, prev, sealed)


def _fields(entry: Entry) -> tuple[int, float, str, str, str, Mapping[str, Any], str]:
    return entry.seq, entry.at, entry.event, entry.hold_id, entry.actor, entry.data, entry.prev


def is_keyed(entry: Entry, key: bytes) -> bool:
    return hmac.compare_digest(mac(key, *_fields(entry)), entry.hash)


def is_legacy(entry: Entry) -> bool:
    return hmac.compare_digest(legacy_digest(*_fields(entry)), entry.hash)


@dataclass(frozen=True)
class Problem:
    seq: int
    what: str

    def __str__(self) -> str:
        return f"entry {self.seq}: {self.what}"


UNVOUCHED = "is not sealed with the audit key, and no chain-keyed entry follows it"


def verify(entries: Iterable[Entry], key: bytes) -> Problem | None:
    """The first entry that was edited, or that follows a deleted one; None if all fit.

    Unkeyed (legacy) entries are accepted only as the trail's first entries, and only when a
    keyed ``chain-keyed`` entry follows the last of them and names it."""
    expected_seq, prev = 1, GENESIS
    legacy_from: int | None = None  # the first of a run of legacy entries not yet vouched for
    keyed_seen = False
    for entry in entries:
        if entry.seq != expected_seq:
            return Problem(expected_seq, f"missing (the next entry is {entry.seq})")
        if entry.prev != prev:
            return Problem(entry.seq, "does not follow the entry before it")
        if is_keyed(entry, key):
            if legacy_from is not None and not _vouches(entry, prev, expected_seq - 1):
                return Problem(legacy_from, UNVOUCHED)
            legacy_from, keyed_seen = None, True
        elif not keyed_seen and is_legacy(entry):
            legacy_from = entry.seq if legacy_from is None else legacy_from
        else:
            return Problem(entry.seq, "was changed after it was written")
        expected_seq, prev = entry.seq + 1, entry.hash
    if legacy_from is not None:
        return Problem(legacy_from, UNVOUCHED)
    return None


def _vouches(entry: Entry, legacy_head: str, legacy_count: int) -> bool:
    data = entry.data
    return (
        entry.event == KEYED
        and data.get("legacy_head") == legacy_head
        and data.get("legacy_entries") == legacy_count
    )


@dataclass(frozen=True)
class Head:
    """Where the trail ended when someone looked: written ``SEQ:HASH``."""

    seq: int
    hash: str

    def __str__(self) -> str:
        return f"{self.seq}:{self.hash}"

    @classmethod
    def parse(cls, text: str) -> Head:
        seq, colon, digest = text.strip().partition(":")
        digest = digest.lower()
        valid_hash = len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)
        if not colon or not seq.isdigit() or int(seq) < 1 or not valid_hash:
            raise ValueError(f"{text!r} is not a head (SEQ:HASH, 64 hex digits)")
        return cls(int(seq), digest)


def contains(head: Head, found: Entry | None, last_seq: int) -> str | None:
    """Why a trail whose entry ``head.seq`` is ``found`` (and whose last entry is ``last_seq``)
    does not contain ``head``; None when it does."""
    if found is None:
        if last_seq < head.seq:
            return f"entry {head.seq} is missing (the trail ends at entry {last_seq})"
        return f"entry {head.seq} is missing"
    if not hmac.compare_digest(found.hash, head.hash):
        return f"entry {head.seq} is different (its hash is {found.hash})"
    return None
