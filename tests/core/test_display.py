"""gateway.core.display.visible: what the CLI and the web UI show of text from mail."""

from __future__ import annotations

import pytest

from gateway.core.display import visible

SENDER = "pupil\u202egpj.exe@school.test"  # reads as "pupilexe.jpg@..." when obeyed


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (SENDER, "pupil\\u202egpj.exe@school.test"),
        (
            "a\u200b\u200c\u200d\u200e\u200f\u2060\ufeffb",
            "a"
            + "".join(
                f"\\u{c:04x}" for c in (0x200B, 0x200C, 0x200D, 0x200E, 0x200F, 0x2060, 0xFEFF)
            )
            + "b",
        ),
        (
            "\u202a\u202b\u202c\u202d\u2066\u2067\u2068\u2069\u061c",
            "\\u202a\\u202b\\u202c\\u202d\\u2066\\u2067\\u2068\\u2069\\u061c",
        ),
        ("line\u2028break\u2029", "line\\u2028break\\u2029"),
        ("tag\U000e0041", "tag\\U000e0041"),
        ("\x1b[31mred\x9b", "\\x1b[31mred\\x9b"),
        ("Jürgen Groß, 北京\tok\n", "Jürgen Groß, 北京\tok\n"),  # letters of any script stay
    ],
    ids=ascii,
)
def test_visible_escapes_what_could_act_on_the_display(text: str, shown: str) -> None:
    assert visible(text) == shown
