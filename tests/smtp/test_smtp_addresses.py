"""Envelope addresses at the SMTP face: what MAIL and RCPT accept, and the reply to what not.

Bytes go over a socket as written (smtplib would quote or refuse some of them), to the real
GatewaySMTP and Handler; the filter behind them records what reached it."""

from __future__ import annotations

import pytest

from support.smtpface import Face, StartFace

SENDER_OK = (250, "2.1.0")
RECIPIENT_OK = (250, "2.1.5")
BAD_SENDER = (553, "5.1.7")  # RFC 3463 §3.2: bad sender's mailbox address syntax
BAD_RECIPIENT = (553, "5.1.3")  # RFC 3463 §3.2: bad destination mailbox address syntax
NEEDS_SMTPUTF8 = (553, "5.6.7")  # RFC 6531 §3.4
POLICY = (550, "5.7.1")

# (path as the client writes it, the reply to MAIL FROM with it, the reply to RCPT TO)
CASES = [
    ("<head@school.test>", SENDER_OK, RECIPIENT_OK),
    ('<"head of year"@school.test>', SENDER_OK, RECIPIENT_OK),
    ('<"a@b"@school.test>', SENDER_OK, RECIPIENT_OK),  # an "@" inside quotes is text
    ("<o'brien+tag@school.test>", SENDER_OK, RECIPIENT_OK),
    ("<head@xn--bcher-kva.test>", SENDER_OK, RECIPIENT_OK),  # an A-label is ASCII
    ("<@relay.test:head@school.test>", SENDER_OK, RECIPIENT_OK),  # RFC 5321 §4.1.1.3: ignored
    # control characters and NUL, bare or quoted (RFC 5321 §4.1.2: qtextSMTP is %d32-126)
    ("<a\x00b@school.test>", BAD_SENDER, BAD_RECIPIENT),
    ("<a\x01b@school.test>", BAD_SENDER, BAD_RECIPIENT),
    ("<a\x1bb@school.test>", BAD_SENDER, BAD_RECIPIENT),
    ("<a\x7fb@school.test>", BAD_SENDER, BAD_RECIPIENT),
    ('<"a\x00b"@school.test>', BAD_SENDER, BAD_RECIPIENT),
    ('<"a\\\x00"@school.test>', BAD_SENDER, BAD_RECIPIENT),
    # a second "@", unterminated quotes, a quoted-pair that eats the "@" or the closing quote
    ("<a@b@school.test>", BAD_SENDER, BAD_RECIPIENT),
    ('<"head@school.test>', BAD_SENDER, BAD_RECIPIENT),
    ('<"a\\"@school.test>', BAD_SENDER, BAD_RECIPIENT),
    ('<"a\\"@school.test">', BAD_SENDER, BAD_RECIPIENT),
    ("<a\\@school.test>", BAD_SENDER, BAD_RECIPIENT),
    # text after the quoted string, and other shapes no Local-part has
    ('<"a"b@school.test>', BAD_SENDER, BAD_RECIPIENT),
    ('<"a"."b"@school.test>', BAD_SENDER, BAD_RECIPIENT),
    ("<(comment)head@school.test>", BAD_SENDER, BAD_RECIPIENT),
    ("<head @school.test>", BAD_SENDER, BAD_RECIPIENT),
    ("<@school.test>", BAD_SENDER, BAD_RECIPIENT),
    ("<head@>", BAD_SENDER, BAD_RECIPIENT),
    ("<head@127.0.0.1>", BAD_SENDER, BAD_RECIPIENT),  # RFC 1123 §2.1: not a host name
    ("<head@[not an address]>", BAD_SENDER, BAD_RECIPIENT),
    # non-ASCII without SMTPUTF8 on MAIL: RFC 6531 §3.4, refused now, not 451 after DATA
    ("<jürgen@school.test>", NEEDS_SMTPUTF8, NEEDS_SMTPUTF8),
    ("<head@bücher.test>", NEEDS_SMTPUTF8, NEEDS_SMTPUTF8),
    ("<head\u202e@school.test>", NEEDS_SMTPUTF8, NEEDS_SMTPUTF8),
    # address literals (RFC 5321 §4.1.3) are well-formed, but refused by policy with a reason
    ("<head@[192.0.2.1]>", POLICY, POLICY),
    ("<head@[IPv6:2001:db8::1]>", POLICY, POLICY),
]


async def mail(face: Face, argument: str) -> tuple[int, str]:
    client = await face.connect()
    reply = await client.command(f"MAIL FROM:{argument}")
    return reply.code, reply.text[:5]


async def rcpt(face: Face, argument: str, mail_from: str = "<head@school.test>") -> tuple[int, str]:
    client = await face.connect()
    assert (await client.command(f"MAIL FROM:{mail_from}")).code == 250
    reply = await client.command(f"RCPT TO:{argument}")
    return reply.code, reply.text[:5]


@pytest.mark.parametrize(("path", "expected", "_"), CASES, ids=ascii)
async def test_mail_from(face: Face, path: str, expected: tuple[int, str], _: object) -> None:
    assert await mail(face, path) == expected


@pytest.mark.parametrize(("path", "_", "expected"), CASES, ids=ascii)
async def test_rcpt_to(face: Face, path: str, _: object, expected: tuple[int, str]) -> None:
    assert await rcpt(face, path) == expected


async def test_address_literal_refusal_says_why(face: Face) -> None:
    client = await face.connect()
    assert (await client.command("MAIL FROM:<head@school.test>")).code == 250
    reply = await client.command("RCPT TO:<pupil@[192.0.2.1]>")
    assert reply.text == "5.7.1 Address literals are not accepted here"


async def test_non_ascii_addresses_are_taken_with_smtputf8(face: Face) -> None:
    assert await mail(face, "<jürgen@bücher.test> SMTPUTF8") == SENDER_OK
    assert await rcpt(face, "<jürgen@bücher.test>", "<head@school.test> SMTPUTF8") == RECIPIENT_OK


@pytest.mark.parametrize("path", [b"<j\xfcrgen@school.test>", b"<head@b\xc3.test>"], ids=repr)
async def test_bytes_that_are_not_utf8_are_refused_even_with_smtputf8(
    face: Face, path: bytes
) -> None:
    client = await face.connect()
    reply = await client.command(b"MAIL FROM:" + path + b" SMTPUTF8")
    assert (reply.code, reply.text[:5]) == BAD_SENDER
    assert (await client.command(b"MAIL FROM:<head@school.test> SMTPUTF8")).code == 250
    reply = await client.command(b"RCPT TO:" + path)
    assert (reply.code, reply.text[:5]) == BAD_RECIPIENT


async def test_a_non_ascii_recipient_is_refused_alone_and_the_others_get_the_message(
    face: Face,
) -> None:
    client = await face.connect()
    assert (await client.command("MAIL FROM:<head@school.test>")).code == 250
    assert (await client.command("RCPT TO:<friend@secure.test>")).code == 250
    reply = await client.command("RCPT TO:<jürgen@secure.test>")
    assert (reply.code, reply.text[:5]) == NEEDS_SMTPUTF8
    assert (await client.command("DATA")).code == 354
    reply = await client.command(b"Subject: hi\r\n\r\nhello\r\n.")
    assert reply.code == 250, reply
    [incoming] = face.filter.received
    assert [r.address for r in incoming.recipients] == ["friend@secure.test"]


@pytest.mark.parametrize("path", ["<Postmaster>", "<postmaster>", "<POSTMASTER>"])
async def test_postmaster_without_a_domain_goes_to_the_local_domains_postmaster(
    face: Face, path: str
) -> None:
    # RFC 5321 §4.5.1: MUST be accepted. The gateway's own postmaster is its organisation's.
    client = await face.connect()
    assert (await client.command("MAIL FROM:<head@school.test>")).code == 250
    assert (await client.command(f"RCPT TO:{path}")).code == 250
    assert (await client.command("DATA")).code == 354
    assert (await client.command(b"Subject: hi\r\n\r\nhello\r\n.")).code == 250
    [incoming] = face.filter.received
    assert [r.address for r in incoming.recipients] == ["postmaster@school.test"]


async def test_postmaster_without_local_domains_is_passed_on_as_written(
    start_face: StartFace,
) -> None:
    face = await start_face(local_domains=())
    client = await face.connect()
    assert (await client.command("MAIL FROM:<head@school.test>")).code == 250
    assert (await client.command("RCPT TO:<Postmaster>")).code == 250
    assert (await client.command("DATA")).code == 354
    assert (await client.command(b"Subject: hi\r\n\r\nhello\r\n.")).code == 250
    [incoming] = face.filter.received
    assert [r.address for r in incoming.recipients] == ["Postmaster"]


async def test_postmaster_is_no_sender_address(face: Face) -> None:
    assert await mail(face, "<Postmaster>") == BAD_SENDER


async def test_the_address_reaches_the_filter_as_the_client_wrote_it(face: Face) -> None:
    # RFC 5321 §2.4: only the receiving host interprets a local part; no re-quoting here.
    client = await face.connect()
    assert (await client.command('MAIL FROM:<"head\\ of year"@school.test>')).code == 250
    assert (await client.command("RCPT TO:<@relay.test:Friend@Secure.test>")).code == 250
    assert (await client.command("DATA")).code == 354
    assert (await client.command(b"Subject: hi\r\n\r\nhello\r\n.")).code == 250
    [incoming] = face.filter.received
    assert incoming.sender == '"head\\ of year"@school.test'
    assert [r.address for r in incoming.recipients] == ["Friend@Secure.test"]


@pytest.mark.parametrize("char", ["\u202e", "\u2066", "\u200b", "\u200f", "\ufeff"], ids=ascii)
async def test_bidi_and_zero_width_characters_are_refused_even_with_smtputf8(
    face: Face, char: str
) -> None:
    # They make "pupil<RLO>gpj.exe" read as "pupilexe.jpg" wherever the address is shown.
    path = f"<pupil{char}gpj.exe@school.test>"
    assert await mail(face, f"{path} SMTPUTF8") == BAD_SENDER
    assert await rcpt(face, path, "<head@school.test> SMTPUTF8") == BAD_RECIPIENT
