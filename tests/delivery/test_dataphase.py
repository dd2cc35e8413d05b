"""The DATA phase on the way out (gateway.delivery.dataphase): the bytes on the wire are
exactly those of aiosmtplib's own ``SMTP.data`` for the same text, and a refusal or a lost
connection raises what aiosmtplib raises, so the transports' outcomes stay as they were."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiosmtplib
import pytest
from aiosmtplib.protocol import PERIOD_REGEX, normalize_message_line_endings
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core.headers import normalise_line_endings, trace_headers
from gateway.delivery import dataphase
from gateway.delivery.dataphase import send_data, wire_pieces

TRACE = trace_headers(
    helo="mta.school.test",
    client_ip="192.0.2.1",
    hostname="gateway.school.test",
    protocol="ESMTP",
    queue_id="Q1",
    date="Tue, 01 Dec 2026 20:00:00 GMT",
    summary="checked; id=Q1",
)


@dataclass
class RawSink:
    """An SMTP server on loopback that keeps the DATA text exactly as it came over the wire
    (still dot-stuffed, up to and including CRLF "." CRLF)."""

    data_reply: bytes = b"354 go ahead\r\n"
    end_reply: bytes = b"250 2.0.0 Ok\r\n"
    close_after: int | None = None  # leave after this many bytes of the text
    received: list[bytes] = field(default_factory=list)
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 sink.test ESMTP\r\n")
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while line := await reader.readline():
                verb = line[:4].upper()
                if verb == b"EHLO":
                    writer.write(b"250-sink.test\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n")
                elif verb == b"DATA":
                    writer.write(self.data_reply)
                    accepted = self.data_reply.startswith(b"354")
                    if accepted and not await self._text(reader, writer):
                        return
                elif verb == b"QUIT":
                    writer.write(b"221 bye\r\n")
                    break
                else:
                    writer.write(b"250 ok\r\n")
                await writer.drain()
        writer.close()

    async def _text(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        if self.close_after is not None:
            await reader.readexactly(self.close_after)
            writer.transport.abort()
            return False
        # The client sends nothing more before the reply: read until the text ends with the
        # end of data (a first line of "." ends it too).
        text = b""
        while not (b"\r\n" + text).endswith(b"\r\n.\r\n"):
            chunk = await reader.read(65536)
            if not chunk:
                raise ConnectionError("the client left during DATA")
            text += chunk
        self.received.append(text)
        writer.write(self.end_reply)
        return True


@contextlib.asynccontextmanager
async def sink(**options: object) -> AsyncIterator[RawSink]:
    server_sink = RawSink(**options)  # type: ignore[arg-type]
    server = await asyncio.start_server(server_sink.handle, "127.0.0.1", 0, limit=2**24)
    server_sink.port = server.sockets[0].getsockname()[1]
    async with server:
        yield server_sink


async def connected(port: int) -> aiosmtplib.SMTP:
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=10, start_tls=False)
    await client.connect()
    await client.ehlo()
    await client.mail("head@school.test")
    await client.rcpt("friend@secure.test")
    return client


MESSAGES = {
    "plain": (b"", b"Subject: hi\r\n\r\nHello\r\n"),
    "with trace lines": (TRACE, b"Subject: hi\r\n\r\nHello\r\n"),
    "leading dot": (b"", b".starts with a dot\r\nthen\r\n"),
    "leading dot after the trace": (TRACE, b".dot\r\n"),
    "dot lines": (TRACE, b"Subject: d\r\n\r\n.\r\n..\r\n.x\r\nend\r\n"),
    "no final CRLF": (TRACE, b"Subject: n\r\n\r\nno line ending at the end"),
    "a final dot without CRLF": (b"", b"Subject: n\r\n\r\n."),
    "8BITMIME body": (TRACE, "Subject: é\r\n\r\nGrüße, naïve café\r\n".encode()),
    "SMTPUTF8 headers": (TRACE, "From: jöhn@schüle.test\r\n\r\n日本語\r\n".encode()),
    "empty body": (TRACE, b""),
    "empty message": (b"", b""),
    "large, dots at block edges": (TRACE, (b"x" * 997 + b"\r\n.") * 300 + b"\r\n"),
}


@pytest.mark.parametrize(("prefix", "body"), MESSAGES.values(), ids=MESSAGES.keys())
async def test_the_wire_bytes_are_aiosmtplibs(prefix: bytes, body: bytes) -> None:
    async with sink() as server:
        stock = await connected(server.port)
        assert (await stock.data(prefix + body)).code == 250
        ours = await connected(server.port)
        response = await send_data(ours, body, prefix)
        assert (response.code, response.message) == (250, "2.0.0 Ok")
        await stock.quit()
        await ours.quit()
    theirs, mine = server.received
    assert mine == theirs


_ATOMS = st.sampled_from([b"\r", b"\n", b".", b"a", b"\r\n", b"\r\n.", b".\r\n", b"\xc3\xa9"])
_TEXTS = st.one_of(st.lists(_ATOMS, max_size=40).map(b"".join), st.binary(max_size=200))


@settings(database=None, max_examples=1000, deadline=None)
@given(body=_TEXTS, prefix=st.one_of(st.just(b""), st.just(TRACE), _TEXTS))
def test_the_stuffing_is_aiosmtplibs_for_any_text(body: bytes, prefix: bytes) -> None:
    # The text of a transaction is CRLF-only (see the module's docstring).
    body, prefix = normalise_line_endings(body), normalise_line_endings(prefix)
    theirs = PERIOD_REGEX.sub(b"..", normalize_message_line_endings(prefix + body)) + b".\r\n"
    assert b"".join(wire_pieces(body, prefix)) == theirs


def test_a_clean_message_without_dot_lines_is_sent_without_a_copy() -> None:
    body = b"Subject: big\r\n\r\n" + b"y" * 100_000 + b"\r\n"
    pieces = wire_pieces(body, TRACE)
    assert pieces[0] is TRACE
    assert pieces[1] is body
    assert pieces[2:] == [b".\r\n"]


async def test_a_refusal_of_data_raises_as_aiosmtplib_does() -> None:
    async with sink(data_reply=b"554 5.7.1 no thanks\r\n") as server:
        stock = await connected(server.port)
        with pytest.raises(aiosmtplib.SMTPDataError) as theirs:
            await stock.data(b"Subject: x\r\n\r\nx\r\n")
        ours = await connected(server.port)
        with pytest.raises(aiosmtplib.SMTPDataError) as mine:
            await send_data(ours, b"Subject: x\r\n\r\nx\r\n", TRACE)
        assert (mine.value.code, mine.value.message) == (theirs.value.code, theirs.value.message)
        assert (mine.value.code, mine.value.message) == (554, "5.7.1 no thanks")
        assert ours.is_connected  # a refusal leaves the session usable (for RSET)
        await stock.quit()
        await ours.quit()


async def test_a_refusal_at_the_end_of_data_raises_as_aiosmtplib_does() -> None:
    async with sink(end_reply=b"552 5.3.4 too big\r\n") as server:
        ours = await connected(server.port)
        with pytest.raises(aiosmtplib.SMTPDataError) as mine:
            await send_data(ours, b"Subject: x\r\n\r\nx\r\n", TRACE)
        assert (mine.value.code, mine.value.message) == (552, "5.3.4 too big")
        await ours.quit()


@pytest.mark.parametrize("size", [1_000, 1_000_000], ids=["small", "1 MB"])
async def test_the_server_closing_mid_body_is_a_disconnect(size: int) -> None:
    body = b"Subject: x\r\n\r\n" + b"z" * size + b"\r\n"
    async with sink(close_after=size // 2) as server:
        ours = await connected(server.port)
        with pytest.raises(aiosmtplib.SMTPServerDisconnected):
            await send_data(ours, body, TRACE)
        assert not ours.is_connected  # closed, as SMTP.data closes it


async def test_an_aiosmtplib_without_the_protocol_internals_gets_its_own_data(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # as if a later aiosmtplib had renamed the command lock
    monkeypatch.setattr(dataphase, "_LOCK", "_renamed_command_lock")
    body = b"Subject: x\r\n\r\n.dot\r\nend"
    async with sink() as server:
        stock = await connected(server.port)
        await stock.data(TRACE + body)
        other = await connected(server.port)
        assert (await send_data(other, body, TRACE)).code == 250
        await stock.quit()
        await other.quit()
    theirs, mine = server.received
    assert mine == theirs
