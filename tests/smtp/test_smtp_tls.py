"""TLS on the SMTP face in process: what the filter is told of a session's TLS and REQUIRETLS,
the Received: protocol types (RFC 3848, RFC 6531), the trace comment, and how a client
certificate's names are matched against trusted_client_names (RFC 6125)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from gateway.core.headers import trace_headers
from gateway.filter.message import Incoming, protocol, trace_comment
from gateway.smtp.tls import certificate_names, names_match
from rig.gatewayproc import HOSTNAME
from rig.pki import RigCA
from support.smtpface import StartFace

MESSAGE = b"Subject: hi\r\n\r\nbody\r\n"


def _server_context(folder: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    ca = RigCA(folder)
    leaf = ca.issue((HOSTNAME,))
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(leaf.cert_file, leaf.key_file)
    client = ssl.create_default_context(cafile=str(ca.ca_file))
    return server, client


async def test_the_filter_is_told_the_sessions_tls_and_requiretls(
    start_face: StartFace, tmp_path: Path
) -> None:
    server, client_context = _server_context(tmp_path)
    face = await start_face(local_domains=["school.test"], tls=server)
    client = await face.connect()
    assert (await client.command("MAIL FROM:<a@school.test> REQUIRETLS")).code == 530
    assert (await client.command("STARTTLS")).code == 220
    await client.writer.start_tls(client_context, server_hostname=HOSTNAME)
    ehlo = await client.command("EHLO client.school.test")
    assert "REQUIRETLS" in ehlo.text.split("\n")
    assert "STARTTLS" not in ehlo.text
    assert (await client.command("STARTTLS")).code == 503  # already in TLS
    assert (await client.command("MAIL FROM:<a@school.test> requiretls")).code == 250
    assert (await client.command("RCPT TO:<b@secure.test>")).code == 250
    assert (await client.command("DATA")).code == 354
    assert (await client.command(MESSAGE + b".")).code == 250
    [incoming] = face.filter.received
    assert incoming.requiretls
    assert incoming.tls_version == "TLSv1.3"
    assert incoming.cipher.startswith("TLS_")
    assert incoming.auth_user == ""
    assert incoming.mail_options == ()  # REQUIRETLS is a flag of its own, not an option


def _incoming(**fields: object) -> Incoming:
    base: dict[str, object] = {
        "client_ip": "192.0.2.1",
        "helo": "mta.school.test",
        "esmtp": True,
        "sender": "a@school.test",
        "mail_options": (),
        "recipients": (),
        "data": MESSAGE,
    }
    return Incoming(**{**base, **fields})  # type: ignore[arg-type]


TLS = {"tls_version": "TLSv1.3", "cipher": "TLS_AES_256_GCM_SHA384"}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"esmtp": False}, "SMTP"),
        ({}, "ESMTP"),
        (TLS, "ESMTPS"),
        ({**TLS, "auth_user": "scanner"}, "ESMTPSA"),
        ({"smtputf8": True}, "UTF8SMTP"),
        ({**TLS, "smtputf8": True}, "UTF8SMTPS"),
        ({**TLS, "smtputf8": True, "auth_user": "scanner"}, "UTF8SMTPSA"),
    ],
)
def test_received_protocol_types(fields: dict[str, object], expected: str) -> None:
    assert protocol(_incoming(**fields)) == expected


def test_the_trace_comment_names_tls_and_the_account_on_a_line_of_its_own() -> None:
    comment = trace_comment(_incoming(**TLS, auth_user="scanner"))
    assert comment == (
        "(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384) (authenticated as scanner)"
    )
    head = trace_headers(
        helo="mta.school.test",
        client_ip="192.0.2.1",
        hostname="gateway.school.test",
        protocol="ESMTPSA",
        queue_id="Q1",
        date="Tue, 01 Dec 2026 10:00:00 GMT",
        summary="not flagged",
        comment=comment,
    ).decode()
    assert head.startswith(
        "Received: from mta.school.test ([192.0.2.1])\r\n"
        f"\t{comment}\r\n"
        "\tby gateway.school.test (Safeguarding Mail Gateway) with ESMTPSA id Q1;\r\n"
    )
    assert trace_comment(_incoming()) == ""


SAN = {"subjectAltName": (("DNS", "MX1.Partner.test"), ("IP Address", "192.0.2.1"))}
CN_ONLY = {"subject": ((("commonName", "relay.partner.test"),),)}


@pytest.mark.parametrize(
    ("cert", "trusted", "match"),
    [
        (SAN, ["mx1.partner.test"], "mx1.partner.test"),
        (SAN, ["mx1.partner.test."], "mx1.partner.test"),
        (SAN, ["mx2.partner.test"], ""),
        (CN_ONLY, ["relay.partner.test"], "relay.partner.test"),
        ({**SAN, **CN_ONLY}, ["relay.partner.test"], ""),  # SAN present: the CN is not a name
        (
            {"subjectAltName": (("DNS", "*.partner.test"),)},
            ["mx1.partner.test"],
            "mx1.partner.test",
        ),
        ({"subjectAltName": (("DNS", "*.partner.test"),)}, ["a.mx1.partner.test"], ""),
        ({"subjectAltName": (("DNS", "*.test"),)}, ["partner.test"], ""),
        ({}, ["mx1.partner.test"], ""),  # nothing verified
        (None, ["mx1.partner.test"], ""),
    ],
)
def test_client_certificate_names_against_trusted_names(
    cert: dict[str, object] | None, trusted: list[str], match: str
) -> None:
    assert names_match(certificate_names(cert), trusted) == match
