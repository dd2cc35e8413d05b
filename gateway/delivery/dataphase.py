"""The DATA phase of an outgoing transaction, for both transports: the message dot-stuffed in
one pass and written as it is, the trace lines written before it without a copy of the body.

aiosmtplib's ``SMTP.data`` makes two regex copies of the whole message (line endings, then
dot-stuffing, RFC 5321 §4.5.2) and a third to append the end of data: most of a large
message's CPU on the way out. A ``Transaction``'s text is CRLF-only already: the filter
normalises what the SMTP face read (``core.headers.normalise_line_endings``), the queue and the
holds keep the filter's text, a release normalises what it reads back, and notices and bounces
are rendered with ``email.policy.SMTP``. So here a message goes on the wire as it is, with a
dot added only where a line starts with one, and for such text the bytes are exactly
aiosmtplib's (a test compares them). Only CRLF text is safe here: a bare LF before a dot would
not be stuffed, and a lenient next hop could end DATA there (SMTP smuggling, RFC 5321
§4.1.1.4); the producers above are what rule that out.

The exchange itself is aiosmtplib's: the protocol's command lock, its reply reader and
timeout, its ``SMTPDataError`` for a reply other than 354 then 250, and the connection closed
on a disconnect or a timeout, so the transports map errors exactly as before.
"""

from __future__ import annotations

import asyncio

import aiosmtplib
from aiosmtplib.protocol import SMTPProtocol

_CRLF = b"\r\n"
_END = b".\r\n"  # after the text's final CRLF
# Below this a message is joined into one write (one send() instead of several); above it
# the pieces go to the transport as they are, with no copy of the body.
_JOIN_BELOW = 64 * 1024
# The aiosmtplib protocol's own attribute this relies on (with ``_response_pending``).
_LOCK = "_command_lock"


def wire_pieces(body: bytes, prefix: bytes = b"") -> list[bytes]:
    """The DATA text of ``prefix + body`` (CRLF-only) as it goes on the wire, in pieces: a
    dot added at the start of every line that starts with one (RFC 5321 §4.5.2), a final CRLF
    if the text lacks one, then "." CRLF (§4.1.1.4)."""
    if prefix and not prefix.endswith(_CRLF):
        # Trace lines always end a line; anything else is joined and treated as one text.
        body, prefix = prefix + body, b""
    pieces: list[bytes] = []
    for text in (prefix, body):
        if text:
            pieces.extend(_stuffed(text))
    if not (body or prefix).endswith(_CRLF):
        pieces.append(_CRLF)  # the text must end with a line ending before the dot
    pieces.append(_END)
    return pieces


def _stuffed(text: bytes) -> list[bytes]:
    """``text`` (starting a line) with a dot added to each line that starts with
    one: after a CRLF (one replace) and at its very start."""
    lead = [b"."] if text.startswith(b".") else []
    if text.find(b"\r\n.") >= 0:
        text = text.replace(b"\r\n.", b"\r\n..")
    return [*lead, text]


def write_pieces(protocol: SMTPProtocol, pieces: list[bytes]) -> None:
    """The DATA text from ``wire_pieces`` on the wire: one write for a small message, the
    pieces as they are (no copy of the body) for a large one."""
    if sum(len(piece) for piece in pieces) < _JOIN_BELOW:
        protocol.write(b"".join(pieces))
    else:
        for piece in pieces:
            protocol.write(piece)


async def send_data(
    client: aiosmtplib.SMTP, body: bytes, prefix: bytes = b""
) -> aiosmtplib.SMTPResponse:
    """DATA, then ``prefix + body``, as ``client.data(prefix + body)`` would send it; the
    250's response. Raises what ``client.data`` raises (``SMTPDataError`` for a refusal,
    ``SMTPServerDisconnected``, ``SMTPTimeoutError``), closing the client on the last two."""
    if not hasattr(client.protocol, _LOCK):
        # Not connected (its data() says so), or an aiosmtplib whose protocol is not the one
        # this was written against: its own data(), slower but the same bytes.
        return await client.data(prefix + body)
    pieces = wire_pieces(body, prefix)
    try:
        return await _exchange(client, pieces)
    except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError):
        client.close()  # as SMTP.data does: the connection is no use any more
        raise


async def _exchange(client: aiosmtplib.SMTP, pieces: list[bytes]) -> aiosmtplib.SMTPResponse:
    # SMTPProtocol.execute_data_command, with the text already on the wire's terms.
    protocol = client.protocol
    lock: asyncio.Lock | None = getattr(protocol, _LOCK) if protocol is not None else None
    if protocol is None or lock is None:
        raise aiosmtplib.SMTPServerDisconnected("Connection lost")
    timeout = client.timeout
    async with lock:
        # A reply is marked as expected before each write, as aiosmtplib does, so one that
        # arrives before read_response is awaited is kept, not dropped as unsolicited.
        protocol._response_pending = True
        protocol.write(b"DATA\r\n")
        start = await protocol.read_response(timeout=timeout)
        if start.code != aiosmtplib.SMTPStatus.start_input:
            raise aiosmtplib.SMTPDataError(start.code, start.message)
        protocol._response_pending = True
        write_pieces(protocol, pieces)
        response = await protocol.read_response(timeout=timeout)
        if response.code != aiosmtplib.SMTPStatus.completed:
            raise aiosmtplib.SMTPDataError(response.code, response.message)
    return response
