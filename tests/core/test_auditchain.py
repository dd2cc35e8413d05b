"""The keyed audit chain: what ``verify`` accepts and what it names, and witnessed heads."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from gateway.core import auditchain
from gateway.core.auditchain import GENESIS, KEYED, Entry, Head, contains, legacy_digest, seal

KEY = b"k" * 32
OTHER_KEY = b"o" * 32

Sealer = Callable[[int, float, str, str, str, dict[str, Any], str], Entry]


def keyed(key: bytes) -> Sealer:
    def make(*fields: Any) -> Entry:
        return seal(*fields, key=key)

    return make


def legacy(*fields: Any) -> Entry:
    return Entry(*fields, legacy_digest(*fields))


def chain(events: list[tuple[str, dict[str, Any]]], sealers: list[Sealer]) -> list[Entry]:
    entries, prev = [], GENESIS
    for seq, ((event, data), sealer) in enumerate(zip(events, sealers, strict=True), start=1):
        entry = sealer(seq, 1_700_000_000.0 + seq, event, "h1", "Jo", data, prev)
        entries.append(entry)
        prev = entry.hash
    return entries


EVENTS = [("held", {"n": 1}), ("rejected", {"reason": "Not needed"}), ("notice-sent", {})]


def marker(legacy_count: int) -> tuple[str, dict[str, Any]]:
    return (KEYED, {"legacy_entries": legacy_count, "legacy_head": "", "rule": "hmac-sha256"})


def migrated(legacy_count: int, keyed_after: int = 1) -> list[Entry]:
    """A trail of ``legacy_count`` unkeyed entries, the chain-keyed entry, then keyed ones."""
    old = chain(EVENTS[:legacy_count], [legacy] * legacy_count)
    event, data = marker(legacy_count)
    data["legacy_head"] = old[-1].hash
    entries = [*old, seal(legacy_count + 1, 1.0, event, "", "gateway", data, old[-1].hash, key=KEY)]
    for i in range(keyed_after):
        seq = len(entries) + 1
        entries.append(seal(seq, 2.0 + i, "held", "h2", "gateway", {}, entries[-1].hash, key=KEY))
    return entries


def recompute(entries: list[Entry], start: int, sealer: Sealer, **change: Any) -> list[Entry]:
    """Change entry ``start`` (1-based) and re-seal it and every later one with ``sealer``:
    what someone with write access to the database, but without the key, can do."""
    out = list(entries[: start - 1])
    prev = out[-1].hash if out else GENESIS
    for index, entry in enumerate(entries[start - 1 :]):
        fields = dataclasses.replace(entry, **(change if index == 0 else {}), prev=prev)
        resealed = sealer(
            fields.seq,
            fields.at,
            fields.event,
            fields.hold_id,
            fields.actor,
            dict(fields.data),
            prev,
        )
        out.append(resealed)
        prev = resealed.hash
    return out


def test_a_keyed_chain_verifies_only_under_its_key() -> None:
    entries = chain(EVENTS, [keyed(KEY)] * 3)
    assert auditchain.verify(entries, KEY) is None
    problem = auditchain.verify(entries, OTHER_KEY)
    assert problem is not None
    assert problem.seq == 1
    assert auditchain.verify([], KEY) is None


@pytest.mark.parametrize(
    ("trail", "expected"),
    [
        # Edited (actor) and every later entry re-sealed by the old, unkeyed rule.
        (recompute(chain(EVENTS, [keyed(KEY)] * 3), 2, legacy, actor="Sam"), (2, "was changed")),
        # ... or under a key of the editor's own.
        (
            recompute(chain(EVENTS, [keyed(KEY)] * 3), 2, keyed(OTHER_KEY), actor="Sam"),
            (2, "was changed"),
        ),
        # The whole trail rewritten by the old rule: nothing vouches for it.
        (recompute(chain(EVENTS, [keyed(KEY)] * 3), 1, legacy), (1, "is not sealed")),
        # A migrated trail: an old entry edited and the old ones re-hashed breaks the link of
        # the chain-keyed entry, which cannot be re-sealed without the key.
        (
            recompute(migrated(3), 2, legacy, actor="Sam")[:3] + migrated(3)[3:],
            (4, "does not follow"),
        ),
        # The chain-keyed entry cut off the end of a migrated trail.
        (migrated(3)[:3], (1, "is not sealed")),
        # Deleted in the middle.
        (chain(EVENTS, [keyed(KEY)] * 3)[::2], (2, "missing (the next entry is 3)")),
    ],
    ids=["legacy-rule", "other-key", "all-legacy", "migrated-edit", "marker-cut", "deleted"],
)
def test_tampering_is_named(trail: list[Entry], expected: tuple[int, str]) -> None:
    problem = auditchain.verify(trail, KEY)
    assert problem is not None
    assert (problem.seq, str(problem).startswith(f"entry {expected[0]}: {expected[1]}")) == (
        expected[0],
        True,
    ), str(problem)


def test_a_trail_from_before_the_key_verifies_with_its_chain_keyed_entry() -> None:
    assert auditchain.verify(migrated(3), KEY) is None
    assert auditchain.verify(migrated(1, keyed_after=0), KEY) is None


def test_unkeyed_entries_after_keyed_ones_are_refused() -> None:
    entries = migrated(2)
    late = legacy(len(entries) + 1, 9.0, "released", "h1", "Jo", {}, entries[-1].hash)
    problem = auditchain.verify([*entries, late], KEY)
    assert problem is not None
    assert str(problem) == f"entry {late.seq}: was changed after it was written"


def test_a_chain_keyed_entry_must_name_the_last_old_entry() -> None:
    entries = migrated(2)
    wrong = dict(entries[2].data, legacy_entries=1)
    entries[2] = seal(3, 1.0, KEYED, "", "gateway", wrong, entries[1].hash, key=KEY)
    problem = auditchain.verify(entries, KEY)
    assert problem is not None
    assert problem.seq == 1


@pytest.mark.parametrize(
    "text", ["", "12", "12:", ":" + "a" * 64, "0:" + "a" * 64, "x:" + "a" * 64, "3:" + "g" * 64]
)
def test_a_head_that_is_not_seq_colon_hash_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="is not a head"):
        Head.parse(text)


def test_a_head_is_found_missing_or_different() -> None:
    entries = chain(EVENTS, [keyed(KEY)] * 3)
    head = Head.parse(f"3:{entries[2].hash.upper()}")
    assert str(head) == f"3:{entries[2].hash}"
    assert contains(head, entries[2], 3) is None
    assert contains(head, None, 2) == "entry 3 is missing (the trail ends at entry 2)"
    assert contains(head, entries[1], 3) == f"entry 3 is different (its hash is {entries[1].hash})"
