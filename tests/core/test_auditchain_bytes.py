"""The bytes the audit chain's MAC covers, pinned: a trail written by any release must still
verify, so the canonical form (sorted keys, no spaces, UTF-8, the time as its ``repr``) can
never change, however it is computed."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.core import auditchain

KEY = b"k" * 32
ZERO = auditchain.GENESIS

# (seq, at, event, hold_id, actor, data, prev), the canonical bytes, and the MAC under KEY.
PINNED: list[tuple[tuple[Any, ...], bytes, str]] = [
    (
        (
            1,
            1764633600.0,
            "received",
            "",
            "gateway",
            {
                "queue_id": "e84f64e1691e",
                "recipients": ["a@secure.test", "b@nosts.test"],
                "findings": ["subject-marker: [SECURE]"],
                "client": "127.0.0.1",
                "message_id": "<j@school.test>",
                "sender": "teacher@school.test",
            },
            ZERO,
        ),
        b'[1,"1764633600.0","received","","gateway",{"client":"127.0.0.1","findings":'
        b'["subject-marker: [SECURE]"],"message_id":"<j@school.test>","queue_id":"e84f64e1691e",'
        b'"recipients":["a@secure.test","b@nosts.test"],"sender":"teacher@school.test"},'
        b'"0000000000000000000000000000000000000000000000000000000000000000"]',
        "c5fb6dadec274f493d741268f8efbc710d312acebd39c8586f7a0d0030795941",
    ),
    (
        (
            12,
            1764633601.123456,
            "held",
            "54ca13ad2318d876",
            "gateway",
            {
                "to": [{"address": "b@nosts.test", "reasons": ["sts-no-record"]}],
                "size": 5120,
                "flagged": True,
                "subject": None,
                "z": {"b": 1.5, "a": -2},
            },
            "ab" * 32,
        ),
        b'[12,"1764633601.123456","held","54ca13ad2318d876","gateway",{"flagged":true,'
        b'"size":5120,"subject":null,"to":[{"address":"b@nosts.test","reasons":'
        b'["sts-no-record"]}],"z":{"a":-2,"b":1.5}},'
        b'"abababababababababababababababababababababababababababababababab"]',
        "19b7dba7ff4313ed28dc2c46fdbbc048df8da57701b3f83e149c374df8c31495",
    ),
    (
        (
            3,
            0.1,
            "release-requested",
            "h1",
            "Jo Smith (DSL) \u2014 Zo\u00eb",
            {
                "reason": 'Social worker said "yes" \\ ok\n\t\u2028',
                "\u00fcn\u00efcode-key": "\u65e5\u672c\u8a9e",
                "ctl": "\x00\x1f\x7f",
            },
            "cd" * 32,
        ),
        b'[3,"0.1","release-requested","h1","Jo Smith (DSL) \xe2\x80\x94 Zo\xc3\xab",'
        b'{"ctl":"\\u0000\\u001f\x7f","reason":"Social worker said \\"yes\\" \\\\ ok\\n\\t'
        b'\xe2\x80\xa8","\xc3\xbcn\xc3\xafcode-key":"\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e"},'
        b'"cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd"]',
        "b3f07c69433a3ea341d1e11f808710027bb21a960f3d46e704f7ea4c457b51dd",
    ),
    (
        (4, 1e-07, "chain-keyed", "", "gateway", {}, ZERO),
        b'[4,"1e-07","chain-keyed","","gateway",{},'
        b'"0000000000000000000000000000000000000000000000000000000000000000"]',
        "d64060fe298268d7216fa484f58f0e80212a0710b12925aa2ca69f87bd9b58e4",
    ),
]


@pytest.mark.parametrize(("fields", "canonical", "digest"), PINNED)
def test_the_canonical_bytes_and_mac_of_an_entry_never_change(
    fields: tuple[Any, ...], canonical: bytes, digest: str
) -> None:
    assert auditchain.canonical(*fields) == canonical
    assert auditchain.mac(KEY, *fields) == digest
    entry = auditchain.seal(*fields, key=KEY)
    assert entry.hash == digest


def _reference(
    seq: int, at: float, event: str, hold_id: str, actor: str, data: Any, prev: str
) -> bytes:
    """The canonical form as the first keyed releases wrote it: one ``json.dumps``."""
    body = json.dumps(
        [seq, repr(at), event, hold_id, actor, data, prev],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return body.encode("utf-8")


# Text as the trail's data holds it: any character but a lone surrogate (no UTF-8 form).
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=20,
)


@given(
    seq=st.integers(min_value=1, max_value=2**53),
    at=st.floats(allow_nan=False, allow_infinity=False),
    event=TEXT,
    hold_id=TEXT,
    actor=TEXT,
    data=st.dictionaries(TEXT, JSON, max_size=6),
    prev=TEXT,
)
def test_the_canonical_form_is_the_one_json_dumps_of_the_entry(
    seq: int, at: float, event: str, hold_id: str, actor: str, data: dict[str, Any], prev: str
) -> None:
    fields = (seq, at, event, hold_id, actor, data, prev)
    assert auditchain.canonical(*fields) == _reference(*fields)
