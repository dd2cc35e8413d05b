"""A pipelining client (RFC 2920) gets its group's replies in order and together: the 250s
to MAIL and RCPT are kept back while the next command is already in, and go out in one write
with the reply that ends the group; a client that waits for each reply gets each at once. The
per-command path's timer: a silent session still ends after the command timeout."""

from __future__ import annotations

import asyncio

import pytest

from support.smtpface import Face, StartFace

GROUP = (
    b"MAIL FROM:<head@school.test>\r\n"
    b"RCPT TO:<a@council.test>\r\n"
    b"RCPT TO:<b@council.test>\r\n"
    b"RCPT TO:<c@council.test>\r\n"
    b"DATA\r\n"
)
TEXT = b"Subject: minutes\r\n\r\nThe minutes.\r\n.\r\n"


@pytest.fixture
def replies_written(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every write of SMTP replies (the face's; the test client writes commands)."""
    written: list[bytes] = []
    write = asyncio.StreamWriter.write

    def recording(self: asyncio.StreamWriter, data: bytes | bytearray | memoryview) -> None:
        if bytes(data[:1]).isdigit():
            written.append(bytes(data))
        write(self, data)

    monkeypatch.setattr(asyncio.StreamWriter, "write", recording)
    return written


async def test_a_pipelined_group_is_answered_in_order_in_one_write(
    face: Face, replies_written: list[bytes]
) -> None:
    client = await face.connect()
    await client.send(GROUP)
    codes = [(await client.reply()).code for _ in range(5)]
    assert codes == [250, 250, 250, 250, 354]
    await client.send(TEXT)
    assert (await client.reply()).code == 250
    [incoming] = face.filter.received
    assert [r.address for r in incoming.recipients] == [f"{x}@council.test" for x in "abc"]
    group_writes = [w for w in replies_written if b"354" in w]
    assert group_writes == [
        b"250 2.1.0 Ok\r\n" + b"250 2.1.5 Ok\r\n" * 3 + b"354 End data with <CR><LF>.<CR><LF>\r\n"
    ]


async def test_a_refusal_in_a_group_keeps_its_place(face: Face) -> None:
    client = await face.connect()
    await client.send(
        b"MAIL FROM:<head@school.test>\r\n"
        b"RCPT TO:<a@council.test>\r\n"
        b"RCPT TO:<not an address>\r\n"
        b"RCPT TO:<c@council.test>\r\n"
        b"RSET\r\n"
        b"NOOP\r\n"
    )
    codes = [(await client.reply()).code for _ in range(6)]
    assert codes[:2] == [250, 250]
    assert codes[2] >= 500
    assert codes[3:] == [250, 250, 250]


async def test_a_client_that_waits_gets_each_reply_at_once(face: Face) -> None:
    # Nothing is kept back when no further command is in: the session would wait for input.
    client = await face.connect()
    assert (await client.command("MAIL FROM:<head@school.test>")).code == 250
    assert (await client.command("RCPT TO:<a@council.test>")).code == 250
    assert (await client.command("DATA")).code == 354
    await client.send(TEXT)
    assert (await client.reply()).code == 250
    await client.send(b"QUIT\r\n")
    assert (await client.reply()).code == 221


async def test_a_silent_session_is_closed_after_the_command_timeout(start_face: StartFace) -> None:
    # One timer per session, its deadline moved by each command: it still ends a session
    # that says nothing, after commands and in the middle of a transaction.
    face = await start_face(local_domains=["school.test"], command_timeout=0.3)
    client = await face.connect()
    assert (await client.command("MAIL FROM:<head@school.test>")).code == 250
    assert (await client.command("RCPT TO:<a@council.test>")).code == 250
    assert await client.reader.read() == b""  # the face closed the connection
    assert face.filter.received == []
