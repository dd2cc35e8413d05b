"""Text from mail, made safe to show to a person: on a terminal (the CLI) or a page (the web UI).

Whoever sends mail writes its addresses, names and text, so none of it may act on the display:
control characters (terminal escapes), bidi controls (U+202A-U+202E, U+2066-U+2069, U+200E,
U+200F, U+061C), zero-width characters (U+200B-U+200D, U+2060, U+FEFF) and line or paragraph
separators are shown as escapes, never obeyed. A bidi override otherwise makes
``\\u202egpj.exe`` read as ``exe.jpg`` (Unicode TR #36 §2.3, "bidirectional text spoofing").
"""

from __future__ import annotations

import unicodedata

# Unicode general categories (UAX #44 §5.7.1) shown escaped: Other (control, format,
# surrogate, private use, unassigned) and the line and paragraph separators.
_ESCAPED = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def visible(text: str, keep: str = "\n\t") -> str:
    """``text`` with every character that could act on the display written as ``\\x..``,
    ``\\u....`` or ``\\U........``; the characters in ``keep`` stay. CRLF becomes LF."""
    out = []
    for ch in text.replace("\r\n", "\n"):
        if ch in keep or unicodedata.category(ch) not in _ESCAPED:
            out.append(ch)
        else:
            out.append(_escape(ord(ch)))
    return "".join(out)


def _escape(code: int) -> str:
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
