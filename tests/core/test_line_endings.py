"""core.headers.normalise_line_endings against the definition it replaced: the same bytes for
any input, and the very object back (no copy) when every line ending is already CRLF."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core.headers import normalise_line_endings

_BARE = re.compile(rb"\r\n|\r|\n")


def reference(message: bytes) -> bytes:
    """Every line ending becomes CRLF, as the function did with three counts first."""
    crlf = message.count(b"\r\n")
    if message.count(b"\n") == crlf and message.count(b"\r") == crlf:
        return message
    return _BARE.sub(b"\r\n", message)


_PARTS = st.sampled_from([b"\r\n", b"\n", b"\r", b"\n\r", b"a", b".", b"\r\n.\r\n", b"\xff"])
_MESSAGES = st.one_of(st.lists(_PARTS, max_size=60).map(b"".join), st.binary(max_size=300))


@settings(database=None, max_examples=1000, deadline=None)
@given(_MESSAGES)
def test_the_same_bytes_as_before_for_any_message(message: bytes) -> None:
    out = normalise_line_endings(message)
    assert out == reference(message)
    rest = message.replace(b"\r\n", b"")
    clean = b"\r" not in rest and b"\n" not in rest
    assert (out is message) == clean
