"""The DATA reader of the SMTP face: lines of any length, up to the message size limit.

aiosmtpd answers a permanent 500 to any line over 1,000 bytes (RFC 5321 §4.5.3.1.6), but real
mail carries longer ones (a 15 KB DKIM-Signature header, Outlook bodies, a bare-LF message from
a direct client is one long "line"), and a 500 bounces a message that must be held. RFC 5321
§4.5.3.1 lets a server accept more than the minimum, so the only limit here is the size one.

What stays exactly as in aiosmtpd: only CRLF ends a line, so only CRLF "." CRLF ends the data
(a bare LF or CR around a dot never does: the SMTP smuggling defence, RFC 5321 §4.1.1.4);
a leading dot is removed from every line (dot-unstuffing, §4.5.2); bytes are kept as sent.

The text is read in blocks, as much as the reader has buffered, not line by line: a line-by-
line reader spent most of a large message's CPU in one call per line. ``readuntil`` of the
whole terminator over the buffer finds the end without consuming a byte past it, so what a
pipelining client sent after the dot (RFC 2920) stays in the reader for the next command.
"""

from __future__ import annotations

import asyncio

_CRLF = b"\r\n"
_END = b"\r\n.\r\n"  # CRLF "." CRLF: the CRLF ends the last line of the text
# The start of the data is the start of a line, as if a CRLF had just been read: a first line
# of "." ends an empty message.
_START = _CRLF


async def read_data(reader: asyncio.StreamReader, limit: int | None) -> bytes | None:
    """Read the message text up to the lone dot and return it unstuffed, or None when more
    than ``limit`` bytes came (all of it is read all the same, so the session can go on)."""
    parts: list[bytes] = []
    size = 0  # bytes read, the final "." CRLF included
    tail = _START  # the last bytes read (up to 4): where a terminator may have begun
    while True:
        started = _started(tail)
        if started:
            # The terminator may have begun in what was read: read only as many bytes as it
            # would still need. That many are always there before the end of data, so this
            # never takes a byte of the next command.
            block = await reader.readexactly(len(_END) - started)
            ended = tail[len(tail) - started :] + block == _END
        else:
            block = await _read_block(reader)
            ended = block.endswith(_END)
        size += len(block)
        if limit and size - 3 > limit:
            parts.clear()  # too big: keep nothing more, only look for the end
        else:
            parts.append(block)
        if ended:
            break
        tail = (tail + block)[-4:] if len(block) < 4 else block[-4:]
    if limit and size - 3 > limit:
        return None
    return _unstuff(_without_end(parts))


async def _read_block(reader: asyncio.StreamReader) -> bytes:
    """Up to and including the next CRLF "." CRLF, or what the buffer holds but its last four
    bytes (a terminator's start is left behind, so one is never split between two blocks)."""
    try:
        return await reader.readuntil(_END)
    except asyncio.LimitOverrunError as overrun:
        # Either no terminator in the buffer (``consumed`` leaves its last len(_END) - 1 bytes)
        # or one further than the reader's limit (``consumed`` is where it starts).
        return await reader.readexactly(overrun.consumed)


def _started(tail: bytes) -> int:
    """How many bytes of a terminator the end of ``tail`` already holds (0 to 4)."""
    for length in (4, 3, 2, 1):
        if tail.endswith(_END[:length]):
            return length
    return 0


def _without_end(parts: list[bytes]) -> list[bytes]:
    """The blocks without the final "." CRLF (which may be spread over the last blocks)."""
    cut = 3
    while cut:
        last = parts.pop()
        if len(last) > cut:
            parts.append(last[:-cut])
            break
        cut -= len(last)
    return parts


def _unstuff(parts: list[bytes]) -> bytes:
    """RFC 5321 §4.5.2: a line that starts with "." loses that first dot. Every line but the
    first starts after a CRLF, and no CRLF "." CRLF is left in the text, so one replace of
    CRLF "." does it, in one pass over the message and only when a line starts with a dot."""
    if parts and parts[0].startswith(b"."):
        parts[0] = parts[0][1:]
    text = b"".join(parts)
    if text.find(b"\r\n.") < 0:
        return text
    return text.replace(b"\r\n.", _CRLF)
