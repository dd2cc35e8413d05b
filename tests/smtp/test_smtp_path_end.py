"""Where a MAIL/RCPT path ends (``params.path_end``): the first ">" outside a quoted local
part. The quick answer for paths without quotes is checked against a plain scan of every
character, on hostile text too."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.smtp.params import path_end


def scanned(arg: str) -> int:
    """RFC 5321 §4.1.2 read one character at a time: a quoted string may hold ">" and a
    backslash in it escapes the next character."""
    start = arg.find("<")
    if start < 0:
        return -1
    quoted = escaped = False
    for index in range(start + 1, len(arg)):
        char = arg[index]
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == ">" and not quoted:
            return index
    return -1


@pytest.mark.parametrize(
    ("arg", "end"),
    [
        ("<head@school.test>", 17),
        ("<head@school.test> ENVID=a>b", 17),
        ('<"a>b"@school.test> SIZE=10', 18),
        ('<"a\\">b"@school.test>', 20),
        ("<a\\>b@school.test>", 3),  # outside quotes a backslash escapes nothing
        ("<head@school.test", -1),
        ("head@school.test>", -1),
        ('<"head>@school.test', -1),
        ("", -1),
    ],
)
def test_where_a_path_ends(arg: str, end: int) -> None:
    assert path_end(arg) == end == scanned(arg)


@given(st.text(alphabet='<>"\\ab@. =', max_size=40))
def test_the_quick_answer_is_the_scan_of_every_character(arg: str) -> None:
    assert path_end(arg) == scanned(arg)
