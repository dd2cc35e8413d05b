"""The DATA reader of the SMTP face: lines of any length, up to the message size limit.

aiosmtpd answers a permanent 500 to any line over 1,000 bytes (RFC 5321 §4.5.3.1.6), but real
mail carries longer ones (a 15 KB DKIM-Signature header, Outlook bodies, a bare-LF message from
a direct client is one long "line"), and a 500 bounces a message that must be held. RFC 5321
§4.5.3.1 lets a server accept more than the minimum, so the only limit here is the size one.

What stays exactly as in aiosmtpd: only CRLF ends a line, so only CRLF "." CRLF ends the data
(a bare LF or CR around a dot never does: the SMTP smuggling defence, RFC 5321 §4.1.1.4);
a leading dot is removed from every line (dot-unstuffing, §4.5.2); bytes are kept as sent.
"""

from __future__ import annotations

import asyncio

_CRLF = b"\r\n"
_END = b".\r\n"


async def read_data(reader: asyncio.StreamReader, limit: int | None) -> bytes | None:
    """Read the message text up to the lone dot and return it unstuffed, or None when more
    than ``limit`` bytes came (all of it is read all the same, so the session can go on)."""
    parts: list[bytes] = []
    size = 0
    too_big = False
    at_line_start = True
    while True:
        chunk = await _read_chunk(reader)
        if at_line_start and chunk == _END:
            break
        size += len(chunk)
        if limit and size > limit and not too_big:
            too_big = True  # keep nothing more, only look for the end
            parts.clear()
        if not too_big:
            parts.append(chunk[1:] if at_line_start and chunk.startswith(b".") else chunk)
        at_line_start = chunk.endswith(_CRLF)
    return None if too_big else b"".join(parts)


async def _read_chunk(reader: asyncio.StreamReader) -> bytes:
    """A whole line with its CRLF, or as much of a long one as the reader's buffer holds
    (a trailing CR stays behind, so a CRLF is never split between two chunks)."""
    try:
        return await reader.readuntil(_CRLF)
    except asyncio.LimitOverrunError as overrun:
        return await reader.readexactly(overrun.consumed)
