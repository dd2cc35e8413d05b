"""The XFORWARD parser against generated commands (fuzz/xforwardgen.py): every well-formed
command is taken, and whatever is taken is safe to put in a header, a log line or a page."""

from __future__ import annotations

from hypothesis import given, settings

from fuzz import xforwardgen
from gateway.smtp import xforward


@settings(max_examples=300, deadline=None)
@given(line=xforwardgen.well_formed)
def test_every_well_formed_xforward_parses_to_values_safe_in_a_header(line: bytes) -> None:
    parsed = xforward.parse(line.decode("utf-8", "surrogateescape").removeprefix("XFORWARD "))
    assert isinstance(parsed, dict), (line, parsed)
    for value in parsed.values():
        assert all("!" <= c <= "~" and c not in '<>()\\";@' for c in value), (line, value)


@settings(max_examples=300, deadline=None)
@given(line=xforwardgen.hostile)
def test_any_other_xforward_is_refused_or_safe(line: bytes) -> None:
    parsed = xforward.parse(line.decode("utf-8", "surrogateescape").removeprefix("XFORWARD"))
    if isinstance(parsed, dict):
        assert all(v.isascii() and " " not in v for v in parsed.values()), (line, parsed)
    else:
        assert parsed.code == 501
