"""A headers-only view of a message, for the hot path: no MIME parse, no copy of the body.

The header block ends at the first empty line (RFC 5322 §2.1). Folded lines are unfolded
(§2.2.3). A line that is neither a field nor a continuation makes the block ``malformed``; the
classifier then fails closed and treats the message as flagged.
"""

from __future__ import annotations

import email.errors
import email.header
import email.utils
import re
from dataclasses import dataclass

# RFC 5322 §3.6.8: field-name is printable ASCII except colon.
_FIELD = re.compile(rb"([\x21-\x39\x3b-\x7e]+)[ \t]*:")
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_LAST_LINE_END = re.compile(rb"\r?\n\Z")


@dataclass(frozen=True)
class Headers:
    fields: tuple[tuple[str, str], ...]  # (name, raw unfolded value), in order
    malformed: bool
    size: int  # bytes of the header block, its ending empty line included

    def get_all(self, name: str) -> list[str]:
        wanted = name.lower()
        return [value for field, value in self.fields if field.lower() == wanted]

    def first(self, name: str) -> str | None:
        found = self.get_all(name)
        return found[0] if found else None


def header_block(message: bytes) -> tuple[bytes, int]:
    """The header block and where the body starts (len(message) when there is no body)."""
    if message.startswith((b"\r\n", b"\n")):
        return b"", 2 if message.startswith(b"\r\n") else 1
    end = _HEADER_END.search(message)
    if end is None:
        # RFC 5322 §3.5: the body is optional. Without one, the message ends with the last
        # field's line ending, which ends that field: it is not an empty line of its own.
        return _LAST_LINE_END.sub(b"", message), len(message)
    return message[: end.start()], end.end()


def parse(message: bytes) -> Headers:
    block, body_start = header_block(message)
    fields: list[tuple[str, str]] = []
    malformed = False
    for line in re.split(rb"\r?\n", block) if block else []:
        if line[:1] in (b" ", b"\t"):
            if not fields:
                malformed = True
                continue
            name, value = fields[-1]
            fields[-1] = (name, value + " " + _text(line).strip())
            continue
        match = _FIELD.match(line)
        if match is None:
            malformed = True
            continue
        name = match.group(1).decode("ascii")
        fields.append((name, _text(line[match.end() :]).strip()))
    return Headers(tuple(fields), malformed, body_start)


def _text(raw: bytes) -> str:
    # RFC 6532 allows UTF-8 in headers; anything else is shown, not trusted.
    return raw.decode("utf-8", "replace")


class HeaderDecodeError(ValueError):
    pass


def decode_words(value: str) -> str:
    """Decode RFC 2047 encoded-words (``=?utf-8?q?...?=``) into text.

    RFC 2231 §5 lets an encoded word name its language after the charset
    (``=?iso-8859-2*sl?Q?...?=``); the language says nothing about the bytes, so it is dropped
    before the charset is looked up.
    """
    if value.isascii() and "=?" not in value:
        return value  # no encoded word: nothing to decode (what email.header gives back)
    try:
        parts: list[tuple[bytes | str, str | None]] = []
        for text, charset in email.header.decode_header(value):
            charset = _without_language(charset)
            last = parts[-1] if parts else None
            if last and charset and last[1] == charset and isinstance(last[0], bytes):
                # Adjacent words in one charset are one run of text (RFC 2047 §6.2);
                # decode_header joins them only when the languages agreed as well.
                parts[-1] = (last[0] + text, charset)
            else:
                parts.append((text, charset))
        return str(email.header.make_header(parts))
    except (ValueError, LookupError, UnicodeError, email.errors.HeaderParseError) as exc:
        raise HeaderDecodeError(str(exc)) from exc


# RFC 2231 §5: charset ["*" language], the language an RFC 1766 tag (1*8ALPHA *("-" 1*8ALPHA));
# digits are let into subtags as later tags (BCP 47, "es-419") use them.
_LANGUAGE = re.compile(r"\*[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*\Z")


def _without_language(charset: str | None) -> str | None:
    if charset is None:
        return None
    language = _LANGUAGE.search(charset)
    if language is None or language.start() == 0:
        return charset  # no language, or nothing but one: left for the lookup to refuse
    return charset[: language.start()]


def addresses(value: str) -> list[str]:
    """The addr-specs of an address-list header such as From: (RFC 5322 §3.4)."""
    return [address for _, address in email.utils.getaddresses([value]) if address]


_BARE_LINE_END = re.compile(rb"\r\n|\r|\n")


def normalise_line_endings(message: bytes) -> bytes:
    """Every line ending becomes CRLF (RFC 5321 §2.3.8). A bare LF or CR can otherwise end
    DATA early at the next hop and smuggle a second message past the filter (the class of
    CVE-2023-51764 and CVE-2024-27305); normalised, ``\\n.\\r\\n`` is just a line with a dot,
    which the relay dot-stuffs."""
    # The usual case is checked without a copy of a large message: clean means as many LFs
    # as CRs as CRLFs. The one-byte counts run first (about twice as fast as the two-byte
    # one), so a message with a bare LF or CR is told apart before the CRLF count.
    lf = message.count(b"\n")
    if lf == message.count(b"\r") and lf == message.count(b"\r\n"):
        return message
    return _BARE_LINE_END.sub(b"\r\n", message)


def trace_headers(
    *,
    helo: str,
    client_ip: str,
    hostname: str,
    protocol: str,
    queue_id: str,
    date: str,
    summary: str,
    comment: str = "",
    client_name: str = "",
) -> bytes:
    """The lines the gateway prepends: a Received: trace field (RFC 5321 §4.4) and
    X-Safeguarding-Gateway with the verdict. Prepended as bytes, never by re-serialising the
    message, so DKIM signatures over the original survive. ``comment`` (the session's TLS and
    AUTH, RFC 3848) goes on a line of its own after the "from" clause. ``client_name`` is the
    client's host name when known (XFORWARD); ``client_ip`` is "" when unknown."""
    helo = _header_safe(helo) or "unknown"
    comment = _header_safe(comment)
    # RFC 5321 §4.4 TCP-info: [address-literal] or Domain [address-literal].
    tcp_info = " ".join(
        part for part in (_header_safe(client_name), address_literal(client_ip)) if part
    )
    received = (
        f"Received: from {helo} ({tcp_info or 'unknown'})\r\n"
        + (f"\t{comment}\r\n" if comment else "")
        + f"\tby {hostname} (Safeguarding Mail Gateway) with {protocol} id {queue_id};\r\n"
        f"\t{date}\r\n"
    )
    return (received + f"X-Safeguarding-Gateway: {_header_safe(summary)}\r\n").encode("utf-8")


def address_literal(ip: str) -> str:
    """An IP address as an RFC 5321 §4.1.3 address literal ("" for none): ``[192.0.2.1]``,
    ``[IPv6:2001:db8::1]``."""
    if not ip:
        return ""
    return f"[IPv6:{ip}]" if ":" in ip else f"[{ip}]"


def _header_safe(text: str) -> str:
    # The client chose its HELO name: keep it to one line of printable characters. Most
    # values are printable already (str.isprintable: every character is): no scan to build.
    if text.isprintable():
        return text[:200]
    return "".join(ch for ch in text if ch.isprintable())[:200]
