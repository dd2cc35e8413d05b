"""The DATA reader of the SMTP face: lines of any length, up to the message size limit.

aiosmtpd answers a permanent 500 to any line over 1,000 bytes (RFC 5321 §4.5.3.1.6), but real
mail carries longer ones (a 15 KB DKIM-Signature header, Outlook bodies, a bare-LF message from
a direct client is one long "line"), and a 500 bounces a message that must be held. RFC 5321
§4.5.3.1 lets a server accept more than the minimum, so the only limit here is the size one.

What stays exactly as in aiosmtpd: only CRLF ends a line, so only CRLF "." CRLF ends the data
(a bare LF or CR around a dot never does: the SMTP smuggling defence, RFC 5321 §4.1.1.4);
a leading dot is removed from every line (dot-unstuffing, §4.5.2); bytes are kept as sent.

The text is read in blocks, as much as the reader has buffered, not line by line: a line-by-
line reader spent most of a large message's CPU in one call per line. ``readuntil`` over the
buffer stops only at CRLF "." (a line that starts with a dot): there the two bytes after the
dot say whether it is the end (CRLF) or a stuffed dot, which is dropped on the spot, so a
message with no such line is found, whole, by one scan and unstuffed by none. Nothing past the
end is consumed, so what a pipelining client sent after the dot (RFC 2920) stays in the reader
for the next command.
"""

from __future__ import annotations

import asyncio

_CRLF = b"\r\n"
_DOT_LINE = b"\r\n."  # a line that starts with a dot: the end of data, or a stuffed dot
# The start of the data is the start of a line, as if a CRLF had just been read: a first line
# of "." ends an empty message, a first line ".x" is unstuffed.
_START = _CRLF


async def read_data(reader: asyncio.StreamReader, limit: int | None) -> bytes | None:
    """Read the message text up to the lone dot and return it unstuffed, or None when more
    than ``limit`` bytes came (all of it is read all the same, so the session can go on)."""
    parts: list[bytes | memoryview] = []
    size = 0  # bytes read, stuffed dots and the final "." CRLF included
    tail = _START  # the last two bytes read: where a CRLF "." may have begun
    while True:
        started = _started(tail)
        if started:
            # A CRLF "." may have begun in what was read: read only the bytes it would still
            # need. That many are always there before the end of data, so this never takes
            # a byte of the next command.
            block = await reader.readexactly(len(_DOT_LINE) - started)
            dot = tail[len(tail) - started :] + block == _DOT_LINE
        else:
            block = await _read_block(reader)
            dot = block.endswith(_DOT_LINE)
        if dot:
            # RFC 5321 §4.5.2: the line starts with a dot. It is the end if CRLF follows
            # (CRLF "." CRLF, §4.1.1.4); otherwise the dot was added by the client and goes.
            after = await reader.readexactly(2)
            size += len(block) + 2
            ended = after == _CRLF
            kept: list[bytes | memoryview] = [memoryview(block)[:-1]]
            if not ended:
                kept.append(after)
            tail = after
        else:
            size += len(block)
            ended = False
            kept = [block]
            tail = (tail + block)[-2:] if len(block) < 2 else block[-2:]
        if limit and size - 3 > limit:
            parts.clear()  # too big: keep nothing more, only look for the end
        else:
            parts.extend(kept)
        if ended:
            break
    if limit and size - 3 > limit:
        return None
    return b"".join(parts)


async def _read_block(reader: asyncio.StreamReader) -> bytes:
    """Up to and including the next CRLF ".", or what the buffer holds but its last two bytes
    (the start of a CRLF "." is left behind, so one is never split between two blocks)."""
    try:
        return await reader.readuntil(_DOT_LINE)
    except asyncio.LimitOverrunError as overrun:
        # Either none in the buffer (``consumed`` leaves its last len(_DOT_LINE) - 1 bytes)
        # or one further than the reader's limit (``consumed`` is where it starts).
        return await reader.readexactly(overrun.consumed)


def _started(tail: bytes) -> int:
    """How many bytes of a CRLF "." the end of ``tail`` already holds (0 to 2)."""
    if tail.endswith(_CRLF):
        return 2
    return 1 if tail.endswith(b"\r") else 0
