"""DATA at the SMTP face: lines of any length up to the size limit, kept byte for byte; the end
of data, dot-unstuffing and the size limit as RFC 5321 §4.5.2 and §4.5.3.1 have them."""

from __future__ import annotations

import pytest

from support.smtpface import Client, Face, StartFace

HEADERS = b"From: head@school.test\r\nTo: friend@secure.test\r\nSubject: long lines\r\n"


async def open_data(face: Face) -> Client:
    client = await face.connect()
    assert (await client.command("MAIL FROM:<head@school.test>")).code == 250
    assert (await client.command("RCPT TO:<friend@secure.test>")).code == 250
    assert (await client.command("DATA")).code == 354
    return client


async def send_message(face: Face, data: bytes) -> tuple[int, str]:
    client = await open_data(face)
    await client.send(data + b".\r\n")
    reply = await client.reply()
    return reply.code, reply.text


@pytest.mark.parametrize(
    "data",
    [
        # a 16 KB DKIM-Signature header line and a 5 KB body line, as real mail has
        HEADERS + b"DKIM-Signature: v=1; b=" + b"A" * 16_000 + b"\r\n\r\n" + b"w" * 5_000 + b"\r\n",
        # a direct client's bare-LF message (the client's CRLF "." CRLF ends it): one "line"
        # of more than 1,000 bytes
        b"Subject: bare\n\n" + b"a line\n" * 500 + b"\r\n",
        # a line of 1,001 bytes with its CRLF, the first that aiosmtpd refuses
        HEADERS + b"\r\n" + b"x" * 999 + b"\r\n",
        # lines far longer than the reader's buffer, one ending at a power of two
        HEADERS + b"\r\n" + b"y" * 32_767 + b"\r\n" + b"z" * 65_000 + b"\r\n",
    ],
    ids=["dkim-16k-body-5k", "bare-lf", "line-of-1001", "32k-and-65k-lines"],
)
async def test_long_lines_reach_the_filter_byte_for_byte(face: Face, data: bytes) -> None:
    code, text = await send_message(face, data)
    assert code == 250, text
    [incoming] = face.filter.received
    assert incoming.data == data


async def test_a_leading_dot_is_removed_once_per_line_however_long_the_line(face: Face) -> None:
    # RFC 5321 §4.5.2. A long line is read in pieces: a piece that starts with "." in the
    # middle of a line must keep it, so a line of dots shows where a piece was cut wrongly.
    stuffed = HEADERS + b"\r\n" + b"." * 5_001 + b"\r\n" + b"..short\r\n"
    code, text = await send_message(face, stuffed)
    assert code == 250, text
    [incoming] = face.filter.received
    assert incoming.data == HEADERS + b"\r\n" + b"." * 5_000 + b"\r\n" + b".short\r\n"


@pytest.mark.parametrize("separator", [b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\n"], ids=repr)
async def test_only_crlf_dot_crlf_ends_the_data_after_a_long_line(
    face: Face, separator: bytes
) -> None:
    # The smuggling defence (RFC 5321 §4.1.1.4): a bare CR or LF never ends DATA.
    data = HEADERS + b"\r\n" + b"v" * 4_000 + separator + b"MAIL FROM:<evil@school.test>\r\n"
    code, text = await send_message(face, data)
    assert code == 250, text
    [incoming] = face.filter.received
    assert incoming.data == data.replace(b"\r\n.", b"\r\n")  # a dot after CRLF is unstuffed


async def test_past_the_size_limit_552_and_the_session_goes_on(start_face: StartFace) -> None:
    face = await start_face(max_message_size=10_000)
    client = await open_data(face)
    await client.send(HEADERS + b"\r\n" + b"q" * 12_000 + b"\r\n.\r\n")
    reply = await client.reply()
    assert (reply.code, reply.text[:5]) == (552, "5.3.4"), reply
    assert face.filter.received == []
    # The whole message was read: the next command is a command, not data.
    assert (await client.command("MAIL FROM:<head@school.test>")).code == 250
    assert (await client.command("RCPT TO:<friend@secure.test>")).code == 250
    assert (await client.command("DATA")).code == 354
    small = HEADERS + b"\r\n" + b"q" * 5_000 + b"\r\n"
    await client.send(small + b".\r\n")
    assert (await client.reply()).code == 250
    [incoming] = face.filter.received
    assert incoming.data == small


async def test_a_long_command_line_still_gets_500(face: Face) -> None:
    client = await face.connect()
    reply = await client.command("MAIL FROM:<" + "a" * 2_000 + "@school.test>")
    assert reply.code == 500, reply
    assert (await client.command("MAIL FROM:<head@school.test>")).code == 250


async def test_commands_pipelined_after_the_dot_are_answered(face: Face) -> None:
    # RFC 2920: the client may send the next commands with the end of data, in one write;
    # the reader must leave them for the session.
    client = await open_data(face)
    body = HEADERS + b"\r\n" + b"p" * 70_000 + b"\r\n..dot\r\n"
    await client.send(body + b".\r\nRSET\r\nMAIL FROM:<head@school.test>\r\nNOOP\r\n")
    replies = [(await client.reply()).code for _ in range(4)]
    assert replies == [250, 250, 250, 250]
    [incoming] = face.filter.received
    assert incoming.data == HEADERS + b"\r\n" + b"p" * 70_000 + b"\r\n.dot\r\n"


@pytest.mark.parametrize("cut", range(1, 6))
async def test_the_end_of_data_split_across_tcp_writes(face: Face, cut: int) -> None:
    # Each write is a segment on loopback; the reader sees CRLF "." CRLF arrive in two pieces.
    client = await open_data(face)
    data = HEADERS + b"\r\nsplit\r\n"
    sent = data + b".\r\n"
    at = len(data) - 2 + cut
    await client.send(sent[:at])
    await client.send(sent[at:])
    assert (await client.reply()).code == 250
    [incoming] = face.filter.received
    assert incoming.data == data
