"""What may go into the header fields and body of a notice the gateway writes itself.

A held message is the sender's, and so may be an attacker's: its Message-ID, subject and
addresses reach a notice only as single-line values valid for the field they go into. Python's
``email`` package decodes an RFC 2047 encoded word in a value it is given (``=0D=0A`` becoming
a real line break in the output), so no value here keeps a ``=?`` that it could decode.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

# RFC 5322 §3.2.3: atext, and dot-atom-text made of it.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_DOT_ATOM = rf"{_ATEXT}+(?:\.{_ATEXT}+)*"
# §3.4.1: a domain literal (dtext: printable ASCII except "[", "]" and "\").
_LITERAL = r"\[[\x21-\x5a\x5e-\x7e]*\]"
# §3.6.4: msg-id = "<" id-left "@" id-right ">", id-right a dot-atom-text or no-fold-literal.
_MSG_ID = re.compile(rf"<{_DOT_ATOM}@(?:{_DOT_ATOM}|{_LITERAL})>")
# §3.4.1: addr-spec = local-part "@" domain, the local part a dot-atom or a quoted string.
_QUOTED = r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\[\x20-\x7e])*"'
_ADDR_SPEC = re.compile(rf"(?:{_DOT_ATOM}|{_QUOTED})@(?:{_DOT_ATOM}|{_LITERAL})")
_MAX_ID = 250  # RFC 5322 §2.1.1: a line is at most 998 characters; ids are far shorter
# §3.6.3: a To: field without any mailbox that can be shown.
NO_MAILBOX = "undisclosed-recipients:;"
_SPACES = re.compile(r"\s+")


def msg_id(value: str) -> str | None:
    """``value`` if it is one valid msg-id (surrounding whitespace aside), else None."""
    value = value.strip()
    if len(value) > _MAX_ID or "=?" in value or not _MSG_ID.fullmatch(value):
        return None
    return value


def mailbox(address: str) -> str | None:
    """``address`` if it can stand as a mailbox in a header field as it is: an ASCII
    addr-spec (RFC 5322 §3.4.1); None for anything else (it still gets the notice, through the
    envelope)."""
    if len(address) > _MAX_ID or "=?" in address or not _ADDR_SPEC.fullmatch(address):
        return None
    return address


def address_list(addresses: Sequence[str]) -> str:
    shown = [a for a in (mailbox(address) for address in addresses) if a]
    return ", ".join(shown) if shown else NO_MAILBOX


def one_line(text: str, limit: int = 200) -> str:
    """``text`` as one line of visible characters: controls, line and paragraph separators,
    format characters (bidi and zero-width marks) and lone surrogates removed, runs of
    whitespace made one space, and ``=?`` broken up so nothing decodes it again."""
    if text.isprintable():  # nothing to remove (str.isprintable: no Cc, Cf, Cs, Z* but " ")
        kept = _SPACES.sub(" ", text).strip()
    else:
        spaced = "".join(" " if ch.isspace() else ch for ch in text)
        kept = _SPACES.sub(" ", "".join(ch for ch in spaced if _visible_or_space(ch))).strip()
    return kept.replace("=?", "= ?")[:limit]


def body_text(text: str) -> str:
    """A notice's body: lines kept, every other control, format character and lone
    surrogate removed (``set_content`` could not encode a surrogate: no notice, no hold)."""
    lines = text.split("\n")
    return "\n".join(
        # A printable line (str.isprintable: no Cc, Cf, Cs, Zl, Zp) is kept as it is.
        line
        if line.isprintable()
        else "".join(ch for ch in line if ch == "\t" or _visible_or_space(ch))
        for line in lines
    )


def _visible_or_space(ch: str) -> bool:
    if ch == " ":
        return True
    # Cc controls (NUL, CR, LF, C1), Cf format (bidi, zero-width, BOM), Cs surrogates,
    # Zl/Zp line and paragraph separators.
    return unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Zl", "Zp")
