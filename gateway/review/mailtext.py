"""A notice as the bytes it is sent as, written out directly (RFC 5322, MIME: RFC 2045-2047).

``EmailMessage`` parses every header value it is given through its header registry, only to
fold it again; for the two notices of every hold that was a quarter of the held path's CPU.
The values of a notice are few and known: addresses already checked as ASCII addr-specs
(``fields.mailbox``), message ids, a date, and free text (the subject, the gateway's own
words) that is written as RFC 2047 encoded words when it is not ASCII. A message with a value
this module cannot write safely (a structured field that is not ASCII, a line break in a
value) is left to ``EmailMessage`` as before: the same result, the slow way.
"""

from __future__ import annotations

import base64
import binascii
import email.header
import email.message
import email.policy
import re
from collections.abc import Sequence

# Fields whose syntax is more than text (RFC 5322 §3.4, §3.6.4): written as given, so only
# when they are plain ASCII; an encoded word is not allowed in them (RFC 2047 §5).
_STRUCTURED = frozenset({"from", "to", "cc", "message-id", "in-reply-to", "references"})
# RFC 5322 §2.1.1: lines SHOULD be at most 78 characters; the MIME heuristics below are the
# same as the email package's (``email.contentmanager``), so the bytes are what they were.
_LINE = 78
# A value without white space or the email package's other split characters (";" and ","):
# ``email.header.Header`` cannot fold it.
_UNBREAKABLE = re.compile(r"[^\s;,]+")
CRLF = b"\r\n"


class _NotPlain(ValueError):
    """A value this module does not write itself."""


def render(headers: Sequence[tuple[str, str]], body: str) -> bytes:
    """A text/plain UTF-8 message of ``headers`` (in order) and ``body`` (lines separated by
    newlines, no other control characters: ``fields.body_text``), with CRLF line ends."""
    try:
        return _direct(headers, body)
    except _NotPlain:
        return _by_registry(headers, body)


def _direct(headers: Sequence[tuple[str, str]], body: str) -> bytes:
    cte, payload = _encoded_body(body)
    lines = [field(name, value) for name, value in headers]
    lines += [
        b'Content-Type: text/plain; charset="utf-8"',
        b"Content-Transfer-Encoding: " + cte,
        b"MIME-Version: 1.0",
    ]
    return CRLF.join(lines) + CRLF + CRLF + payload


def field(name: str, value: str) -> bytes:
    """One header field, folded (RFC 5322 §2.2.3) and, when unstructured text that is not
    ASCII, written as encoded words (RFC 2047 §2, UTF-8)."""
    if "\r" in value or "\n" in value:
        raise _NotPlain(name)
    if value.isascii():
        if len(name) + 2 + len(value) <= _LINE:
            return f"{name}: {value}".encode("ascii")
        if _UNBREAKABLE.fullmatch(value):
            # One word with no place to fold (a notice's own Message-ID, 70 or so characters):
            # the email package puts it alone on a continuation line, as this does.
            return f"{name}: \r\n {value}".encode("ascii")
        folded = email.header.Header(value, "us-ascii", header_name=name)
    elif name.lower() in _STRUCTURED:
        raise _NotPlain(name)
    else:
        folded = email.header.Header(value, "utf-8", header_name=name)
    written = folded.encode(linesep="\r\n", maxlinelen=_LINE)
    return f"{name}: {written}".encode("ascii")


def _encoded_body(text: str) -> tuple[bytes, bytes]:
    """The transfer encoding and the body in it, CRLF line ends: 7bit or 8bit when every line
    is short, else the shorter of quoted-printable and base64 (RFC 2045 §6)."""
    lines = text.encode("utf-8").splitlines()
    if max((len(line) for line in lines), default=0) <= _LINE:
        data = CRLF.join(lines) + CRLF
        return (b"7bit" if data.isascii() else b"8bit"), data
    joined = b"\n".join(lines) + b"\n"
    quoted = binascii.b2a_qp(joined, istext=True).replace(b"\n", CRLF)
    data = CRLF.join(lines) + CRLF
    # base64's length, known without encoding (RFC 2045 §6.8: 4 characters for every 3
    # octets, a CRLF after every 76): a notice's text is mostly ASCII, so QP mostly wins.
    if 4 * -(-len(data) // 3) + 2 * -(-len(data) // 57) < len(quoted):
        return b"base64", base64.encodebytes(data).replace(b"\n", CRLF)
    return b"quoted-printable", quoted


def _by_registry(headers: Sequence[tuple[str, str]], body: str) -> bytes:
    message = email.message.EmailMessage(policy=email.policy.SMTP)
    for name, value in headers:
        message[name] = value
    message.set_content(body)
    return message.as_bytes()
