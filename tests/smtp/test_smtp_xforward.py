"""XFORWARD on the SMTP face in process (Postfix's XFORWARD_README): offered to and honoured
from trusted networks only, what each attribute tells the filter, the replies to bad commands,
and that the attributes belong to one transaction. Then what the Received: field and the
recorded client say of a forwarded client."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gateway.core.headers import trace_headers
from gateway.filter.message import Incoming, client_text, forwarded_fields, trace_comment
from gateway.smtp import xforward
from support.smtpface import Client, Face, StartFace

MESSAGE = b"Subject: hi\r\n\r\nbody\r\n"
PEER = {"via_ip": "127.0.0.1", "via_helo": "client.school.test"}  # the face's test client


async def _send(client: Client) -> None:
    assert (await client.command("MAIL FROM:<a@school.test>")).code == 250
    assert (await client.command("RCPT TO:<b@secure.test>")).code == 250
    assert (await client.command("DATA")).code == 354
    assert (await client.command(MESSAGE + b".")).code == 250


def _client(incoming: Incoming) -> dict[str, str]:
    names = ("client_ip", "helo", "client_name", "client_proto", "upstream_id", "via_ip")
    return {name: getattr(incoming, name) for name in (*names, "via_helo")}


def _expected(**fields: str) -> dict[str, str]:
    empty = dict.fromkeys(("client_ip", "helo", "client_name", "client_proto", "upstream_id"), "")
    return {**empty, **PEER, **fields}


async def test_xforward_is_offered_to_trusted_networks_only(start_face: StartFace) -> None:
    trusted = await (await start_face()).connect()
    ehlo = await trusted.command("EHLO client.school.test")
    assert "XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE" in ehlo.text.split("\n")
    assert "XFORWARD" in (await trusted.command("HELP")).text

    untrusted = await (await start_face(trusted_networks=["192.0.2.0/24"])).connect()
    assert "XFORWARD" not in (await untrusted.command("EHLO client.school.test")).text
    assert "XFORWARD" not in (await untrusted.command("HELP")).text
    # As Postfix answers a client outside smtpd_authorized_xforward_hosts.
    refused = await untrusted.command("XFORWARD ADDR=192.0.2.7")
    assert str(refused) == "550 5.7.0 Error: insufficient authorization"


@pytest.mark.parametrize(
    ("commands", "client"),
    [
        pytest.param(
            [
                "XFORWARD NAME=pc7.school.test ADDR=192.0.2.7 PORT=50123 PROTO=ESMTP",
                "XFORWARD HELO=PC7 IDENT=4XyZ12 SOURCE=REMOTE",
            ],
            _expected(
                client_ip="192.0.2.7",
                client_name="pc7.school.test",
                helo="PC7",
                client_proto="ESMTP",
                upstream_id="4XyZ12",
            ),
            id="every attribute, in two commands as Postfix sends them",
        ),
        pytest.param(
            ["xforward addr=192.0.2.7 Helo=pc7"],
            _expected(client_ip="192.0.2.7", helo="pc7"),
            id="names in any case",
        ),
        pytest.param(
            ["XFORWARD ADDR=IPV6:2001:DB8::7"],
            _expected(client_ip="2001:db8::7"),
            id="an IPv6 address, its prefix taken off",
        ),
        pytest.param(
            ["XFORWARD NAME=[UNAVAILABLE] ADDR=[unavailable] HELO=[TEMPUNAVAIL] IDENT=x"],
            _expected(upstream_id="x"),
            id="unavailable means unknown, never the MTA's own",
        ),
        pytest.param(
            ["XFORWARD HELO=my+2Bpc+3D1 IDENT=id+28a+29"],
            _expected(helo="my+pc=1", upstream_id="id?a?"),
            id="xtext decoded; header specials neutered",
        ),
        pytest.param(
            ["XFORWARD HELO=pc7 ADDR=192.0.2.7", "XFORWARD ADDR=192.0.2.8"],
            _expected(client_ip="192.0.2.8", helo="pc7"),
            id="a later command updates what an earlier one said",
        ),
        pytest.param(
            [],
            {**dict.fromkeys(("client_name", "client_proto", "upstream_id", "via_ip"), "")}
            | {"client_ip": "127.0.0.1", "helo": "client.school.test", "via_helo": ""},
            id="no XFORWARD: the peer is the client",
        ),
    ],
)
async def test_what_xforward_tells_the_filter(
    face: Face, commands: list[str], client: dict[str, str]
) -> None:
    session = await face.connect()
    for line in commands:
        assert str(await session.command(line)) == "250 2.0.0 Ok", line
    await _send(session)
    [incoming] = face.filter.received
    assert _client(incoming) == client


@pytest.mark.parametrize(
    ("line", "reply"),
    [
        ("XFORWARD", "501 5.5.4 Syntax: XFORWARD attribute=value ..."),
        ("XFORWARD ADDR", "501 5.5.4 Syntax: XFORWARD attribute=value ..."),
        ("XFORWARD ADDR=", "501 5.5.4 Syntax: XFORWARD attribute=value ..."),
        ("XFORWARD COLOUR=blue", "501 5.5.4 Bad XFORWARD attribute name"),
        ("XFORWARD ADDR=192.0.2.300", "501 5.5.4 Bad XFORWARD ADDR syntax"),
        ("XFORWARD ADDR=pc7.school.test", "501 5.5.4 Bad XFORWARD ADDR syntax"),
        ("XFORWARD NAME=pc7..school.test", "501 5.5.4 Bad XFORWARD NAME syntax"),
        ("XFORWARD NAME=pc7+2Cschool", "501 5.5.4 Bad XFORWARD NAME syntax"),
        ("XFORWARD PORT=65536", "501 5.5.4 Bad XFORWARD PORT syntax"),
        ("XFORWARD PORT=25a", "501 5.5.4 Bad XFORWARD PORT syntax"),
        ("XFORWARD SOURCE=ELSEWHERE", "501 5.5.4 Bad XFORWARD SOURCE syntax"),
        ("XFORWARD PROTO=" + "P" * 65, "501 5.5.4 Bad XFORWARD PROTO syntax"),
        ("XFORWARD HELO=pc+2", "501 5.5.4 Bad XFORWARD HELO syntax"),  # not xtext
        ("XFORWARD HELO=pc+2b", "501 5.5.4 Bad XFORWARD HELO syntax"),  # hex is upper case
        ("XFORWARD HELO=a=b", "501 5.5.4 Bad XFORWARD HELO syntax"),  # "=" must be +3D
        ("XFORWARD IDENT=" + "x" * 256, "501 5.5.4 Error: attribute value too long"),
    ],
)
async def test_a_malformed_xforward_gets_501_and_changes_nothing(
    face: Face, line: str, reply: str
) -> None:
    session = await face.connect()
    assert str(await session.command("XFORWARD ADDR=192.0.2.7")) == "250 2.0.0 Ok"
    assert str(await session.command(line)) == reply
    await _send(session)
    [incoming] = face.filter.received
    assert incoming.client_ip == "192.0.2.7"  # the good command before it still holds


async def test_xforward_in_a_transaction_gets_503(face: Face) -> None:
    session = await face.connect()
    assert (await session.command("MAIL FROM:<a@school.test>")).code == 250
    refused = await session.command("XFORWARD ADDR=192.0.2.7")
    assert str(refused) == "503 5.5.1 Error: MAIL transaction in progress"
    assert (await session.command("RCPT TO:<b@secure.test>")).code == 250
    assert (await session.command("DATA")).code == 354
    assert (await session.command(MESSAGE + b".")).code == 250
    [incoming] = face.filter.received
    assert (incoming.client_ip, incoming.via_ip) == ("127.0.0.1", "")


@pytest.mark.parametrize("between", ["end of DATA", "RSET", "EHLO"])
async def test_the_attributes_are_forgotten_at_the_end_of_the_transaction(
    face: Face, between: str
) -> None:
    session = await face.connect()
    assert (await session.command("XFORWARD ADDR=192.0.2.7 HELO=pc7")).code == 250
    if between == "end of DATA":
        await _send(session)
    else:
        verb = "RSET" if between == "RSET" else "EHLO client.school.test"
        assert (await session.command(verb)).code == 250
    await _send(session)
    last = face.filter.received[-1]
    assert (last.client_ip, last.helo, last.via_ip) == ("127.0.0.1", "client.school.test", "")
    if between == "end of DATA":
        assert face.filter.received[0].client_ip == "192.0.2.7"


FORWARDED = Incoming(
    client_ip="192.0.2.7",
    helo="PC7",
    esmtp=True,
    sender="a@school.test",
    mail_options=(),
    recipients=(),
    data=MESSAGE,
    client_name="pc7.school.test",
    client_proto="ESMTP",
    upstream_id="4XyZ12",
    via_ip="127.0.0.1",
    via_helo="mta.school.test",
)


def test_the_received_field_names_the_client_and_the_mta_it_came_via() -> None:
    head = trace_headers(
        helo=FORWARDED.helo,
        client_ip=FORWARDED.client_ip,
        client_name=FORWARDED.client_name,
        hostname="gateway.school.test",
        protocol="ESMTP",
        queue_id="abc123",
        date="Thu, 26 Nov 2026 10:00:00 +0000",
        summary="not flagged",
        comment=trace_comment(FORWARDED),
    ).decode()
    assert head.startswith(
        "Received: from PC7 (pc7.school.test [192.0.2.7])\r\n"
        "\t(via mta.school.test [127.0.0.1])\r\n"
        "\tby gateway.school.test (Safeguarding Mail Gateway) with ESMTP id abc123;\r\n"
    ), head
    unknown = trace_headers(
        helo="",
        client_ip="",
        hostname="gateway.school.test",
        protocol="ESMTP",
        queue_id="abc123",
        date="Thu, 26 Nov 2026 10:00:00 +0000",
        summary="not flagged",
    ).decode()
    assert unknown.startswith("Received: from unknown (unknown)\r\n"), unknown
    six = trace_headers(
        helo="pc7",
        client_ip="2001:db8::7",
        hostname="gateway.school.test",
        protocol="ESMTP",
        queue_id="abc123",
        date="Thu, 26 Nov 2026 10:00:00 +0000",
        summary="not flagged",
    ).decode()
    assert six.startswith("Received: from pc7 ([IPv6:2001:db8::7])\r\n"), six  # RFC 5321 §4.1.3


NO_ADDR_HELO_ID = {"client_ip": "", "helo": "", "upstream_id": ""}
NO_ADDR_NAME_HELO = {"client_ip": "", "client_name": "", "helo": ""}


@pytest.mark.parametrize(
    ("changes", "text"),
    [
        ({}, "pc7.school.test[192.0.2.7] (HELO PC7) via 127.0.0.1, MTA queue id 4XyZ12"),
        ({"client_name": "", "upstream_id": ""}, "192.0.2.7 (HELO PC7) via 127.0.0.1"),
        (NO_ADDR_HELO_ID, "pc7.school.test[unknown] via 127.0.0.1"),
        (NO_ADDR_NAME_HELO, "unknown via 127.0.0.1, MTA queue id 4XyZ12"),
        ({"via_ip": "", "client_ip": "192.0.2.1"}, "192.0.2.1"),  # not forwarded: the peer
    ],
)  # fmt: skip
def test_the_recorded_client_says_who_sent_it_and_via_which_mta(
    changes: dict[str, str], text: str
) -> None:
    assert client_text(replace(FORWARDED, **changes)) == text


def test_the_log_line_keeps_the_mta_beside_the_client() -> None:
    assert forwarded_fields(FORWARDED) == {
        "via": "127.0.0.1",
        "client_name": "pc7.school.test",
        "helo": "PC7",
        "client_proto": "ESMTP",
        "upstream_id": "4XyZ12",
    }
    assert forwarded_fields(replace(FORWARDED, via_ip="")) == {}


def test_xtext_round_trips() -> None:
    assert xforward.decode_xtext("a+2Bb+3Dc+20d") == "a+b=c d"
    assert xforward.decode_xtext("") is None
