"""RFC 2920 command pipelining for an outgoing transaction: MAIL FROM, every RCPT TO and DATA
in one write, their replies read back in order, then the text; for both transports, when the
next hop advertises PIPELINING.

Command by command, a transaction of one recipient costs four writes and four waits for the
peer (MAIL, RCPT, DATA, the text); pipelined, two of each. RFC 2920 rules followed here:

* §3.1: DATA changes the session's state, so it is the last command of the group; the text
  goes only after its 354.
* §3.1: the client checks every reply of the group, and cannot assume DATA was refused
  because every RCPT was: if no RCPT was accepted and DATA still got 354, a lone "." ends
  the empty text (nothing is delivered: there is no recipient), and the transport then sends
  RSET as it does today when every recipient is refused.
* A MAIL refused: the RCPTs' and DATA's replies (503s) are still read, so the connection
  stays in step for the RSET that follows.

aiosmtplib reads one reply per command and drops bytes it was not waiting for (and parses only
the first reply of a chunk), so a group's replies, which may come in one chunk or several,
would be lost. For the length of a group a small protocol of this module stands in for
aiosmtplib's on the transport (``set_protocol``): it keeps every byte in aiosmtplib's buffer
and parses each reply with aiosmtplib's parser, under its command lock, with the client's
timeout per reply; a disconnect or a timeout closes the client, as aiosmtplib does. What each
command got back is an ``Exchange``; each transport maps it to the same results, stages and
outcomes as its command-by-command path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import aiosmtplib
from aiosmtplib.email import quote_address
from aiosmtplib.protocol import COMMAND_INJECTION_REGEX, MAX_RESPONSE_LENGTH, SMTPProtocol

from gateway.delivery.dataphase import wire_pieces, write_pieces
from gateway.delivery.transport import Reply, Sent, Transaction

# The aiosmtplib protocol's own attributes this relies on; without them (another aiosmtplib)
# the transports keep to the command-by-command path.
_NEEDED = ("_command_lock", "_buffer", "_read_response_from_buffer")
_DATA = b"DATA\r\n"
_EMPTY_TEXT = b".\r\n"
_START_INPUT = int(aiosmtplib.SMTPStatus.start_input)
_COMPLETED = int(aiosmtplib.SMTPStatus.completed)


def offered(client: aiosmtplib.SMTP) -> bool:
    """The peer advertised PIPELINING in its last EHLO, and the connection's protocol is the
    one this module was written against."""
    protocol = client.protocol
    if protocol is None or not client.supports_extension("pipelining"):
        return False
    return all(hasattr(protocol, name) for name in _NEEDED)


def command(verb: bytes, address: str, options: Sequence[str], encoding: str) -> bytes:
    """``MAIL FROM:<a> opts`` or ``RCPT TO:<a> opts`` (``verb`` = b"MAIL FROM:" or
    b"RCPT TO:"), the bytes aiosmtplib's ``mail()`` and ``rcpt()`` send, with their checks:
    an address or option that could smuggle a parameter or a command raises ValueError."""
    args = [verb + _path(address, encoding)]
    args.extend(option.encode("ascii") for option in options)
    for arg in args[1:]:
        if COMMAND_INJECTION_REGEX.search(arg):
            raise ValueError("Command arg contains a prohibited control character")
    return b" ".join(args) + b"\r\n"


@lru_cache(maxsize=4096)
def _path(address: str, encoding: str) -> bytes:
    """``<address>`` as aiosmtplib quotes it (``email.utils.parseaddr``, the slowest part of
    a command), checked and encoded. Remembered for the most recent addresses, as the same
    senders and recipients recur; a refusal (ValueError) is never remembered, so it is
    raised every time."""
    path = quote_address(address).encode(encoding)
    if COMMAND_INJECTION_REGEX.search(path):
        raise ValueError("Command arg contains a prohibited control character")
    return path


@dataclass
class Exchange:
    """What a pipelined transaction got back, in the order sent. A reply is missing when the
    connection was lost (``lost``) before it came; ``end`` is the reply to the text (or to the
    lone "." of an empty one), None when no text was sent."""

    mail: aiosmtplib.SMTPResponse | None = None
    rcpts: list[aiosmtplib.SMTPResponse] = field(default_factory=list)
    data: aiosmtplib.SMTPResponse | None = None
    end: aiosmtplib.SMTPResponse | None = None
    lost: aiosmtplib.SMTPException | OSError | None = None

    @property
    def text_sent(self) -> bool:
        """The message's text went on the wire: from here on the peer may have it."""
        return self.end is not None or (self.lost is not None and _accepted_data(self))

    def data_refusal(self) -> aiosmtplib.SMTPResponse | None:
        """The reply that refused the message at the DATA stage: DATA's own (not 354), or
        the one to the text (not 250); None if neither did."""
        if self.data is not None and self.data.code != _START_INPUT:
            return self.data
        if self.end is not None and self.end.code != _COMPLETED:
            return self.end
        return None


def record_recipients(exchange: Exchange, t: Transaction, sent: Sent) -> bool:
    """Each RCPT's reply into ``sent`` as the command-by-command path keeps it (250 and 251
    accepted; 4xx and 5xx refused with their code, RFC 5321 §3.3); True when every RCPT was
    answered."""
    for recipient, reply in zip(t.recipients, exchange.rcpts, strict=False):
        if reply.code in (250, 251):
            sent.accepted.append(recipient.address)
        else:
            sent.refused[recipient.address] = Reply(reply.code, reply.message)
    return len(exchange.rcpts) == len(t.recipients)


def _accepted_data(exchange: Exchange) -> bool:
    return exchange.data is not None and exchange.data.code == _START_INPUT


async def transact(
    client: aiosmtplib.SMTP,
    mail: bytes,
    rcpts: Sequence[bytes],
    body: bytes,
    prefix: bytes = b"",
) -> Exchange:
    """MAIL, the RCPTs and DATA in one write (``mail`` and ``rcpts`` from ``command``), every
    reply read in order, then ``prefix + body`` (dot-stuffed as ``dataphase`` does) if some
    RCPT was accepted and DATA got 354. Never raises for what the peer said or a lost
    connection: those are in the ``Exchange``."""
    exchange = Exchange()
    protocol = client.protocol
    lock = getattr(protocol, "_command_lock", None) if protocol is not None else None
    if protocol is None or lock is None:
        exchange.lost = aiosmtplib.SMTPServerDisconnected("Connection lost")
        return exchange
    async with lock:
        replies = _Replies(protocol, client.timeout)
        try:
            protocol.write(b"".join([mail, *rcpts, _DATA]))
            await _group(exchange, replies, len(rcpts), wire_pieces(body, prefix))
        except (aiosmtplib.SMTPException, OSError) as exc:
            exchange.lost = exc
        finally:
            replies.release()
    if exchange.lost is not None:
        client.close()  # what was said and heard is out of step, or the peer is gone
    return exchange


async def _group(exchange: Exchange, replies: _Replies, count: int, pieces: list[bytes]) -> None:
    exchange.mail = await replies.next()
    for _ in range(count):
        exchange.rcpts.append(await replies.next())
    exchange.data = await replies.next()
    if not _accepted_data(exchange):
        return
    accepted = exchange.mail.code == 250 and any(r.code in (250, 251) for r in exchange.rcpts)
    if accepted:
        write_pieces(replies.protocol, pieces)
    else:
        # RFC 2920 §3.1: DATA accepted with nobody to deliver to (or after a refused MAIL,
        # from a peer that should have refused it): a lone "." ends the empty text.
        replies.protocol.write(_EMPTY_TEXT)
    exchange.end = await replies.next()


class _Replies(asyncio.Protocol):
    """The replies of a group. While it is in use it stands in for the aiosmtplib protocol
    on the transport (``set_protocol``, so every event loop and the TLS transport call it):
    every byte received goes into that protocol's buffer, none dropped, and is parsed there
    with its own parser; flow control, EOF and the connection's loss are passed on to it,
    so the client learns of them as it always does."""

    def __init__(self, protocol: SMTPProtocol, timeout: float | None) -> None:
        self.protocol = protocol
        self._timeout = timeout
        self._loop = asyncio.get_running_loop()
        self._more: asyncio.Future[None] | None = None
        self._overflow = False
        self._ended = False
        self._transport = protocol.transport
        if self._transport is not None:
            self._transport.set_protocol(self)

    def release(self) -> None:
        """The aiosmtplib protocol back on the transport."""
        if self._transport is not None:
            self._transport.set_protocol(self.protocol)
            self._transport = None

    def _wake(self) -> None:
        if self._more is not None and not self._more.done():
            self._more.set_result(None)

    def data_received(self, data: bytes) -> None:
        buffer = self.protocol._buffer
        buffer.extend(data)
        if len(buffer) > MAX_RESPONSE_LENGTH:
            # A peer that streams without end: aiosmtplib's own bound on a reply.
            del buffer[:]
            self._overflow = True
        self._wake()

    def eof_received(self) -> bool | None:
        self._ended = True
        self._wake()
        return self.protocol.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended = True
        self._transport = None
        self._wake()
        self.protocol.connection_lost(exc)

    def pause_writing(self) -> None:
        self.protocol.pause_writing()

    def resume_writing(self) -> None:
        self.protocol.resume_writing()

    async def next(self) -> aiosmtplib.SMTPResponse:
        while True:
            if self._overflow:
                raise aiosmtplib.SMTPResponseException(-1, "Response too long")
            reply = self.protocol._read_response_from_buffer()
            if reply is not None:
                return reply
            if self._ended or self._transport is None:
                raise aiosmtplib.SMTPServerDisconnected("Connection lost")
            self._more = self._loop.create_future()
            try:
                async with asyncio.timeout(self._timeout):
                    await self._more
            except TimeoutError as exc:
                raise aiosmtplib.SMTPReadTimeoutError("Timed out waiting for a reply") from exc
            finally:
                self._more = None
