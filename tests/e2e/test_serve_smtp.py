"""`gateway serve` end to end: the SMTP face. Admission, limits, DSN and SMTPUTF8 parameters,
and SMTP smuggling with bare line endings (raw bytes over a socket: smtplib would fix them)."""

from __future__ import annotations

import smtplib
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from rig.gatewayproc import (
    Gateway,
    Reply,
    message,
    raw_session,
    split_trace,
    swaks,
    transact,
)
from rig.upstream import Upstream

pytestmark = [pytest.mark.e2e, pytest.mark.both_backends]

SENDER = "head@school.test"
OTHER_LOOPBACK = "127.0.0.2"


# ---- admission


def test_untrusted_client_refused_with_554(serve: Callable[..., Gateway]) -> None:
    gw = serve(smtp={"trusted_networks": [f"{OTHER_LOOPBACK}/32"]})
    with raw_session(gw.address) as (session, greeting):
        assert greeting.code == 554, greeting
        assert greeting.text.startswith("5.7.1"), greeting
        # Not a session: the gateway hangs up.
        assert session.replies_until_close() == []
    with pytest.raises(smtplib.SMTPConnectError) as refused:
        smtplib.SMTP(*gw.address, timeout=10)
    assert refused.value.smtp_code == 554
    assert gw.relayed() == []
    assert gw.proc.events("connection refused")


def test_trusted_client_from_another_loopback_address_is_served(
    serve: Callable[..., Gateway],
) -> None:
    gw = serve(smtp={"trusted_networks": [f"{OTHER_LOOPBACK}/32"]})
    with gw.smtp(source=OTHER_LOOPBACK) as client:
        reply = transact(client, SENDER, ["a@secure.test"], message(flagged=False))
    assert reply.code == 250, reply
    [relayed] = gw.wait_relayed(1)
    assert f"[{OTHER_LOOPBACK}]".encode() in relayed.data.split(b"\r\n", 1)[0]


def test_swaks_untrusted_client_refused(serve: Callable[..., Gateway]) -> None:
    gw = serve(smtp={"trusted_networks": [f"{OTHER_LOOPBACK}/32"]})
    refused = swaks(gw.address, SENDER, ["a@secure.test"], None, "--local-interface", "127.0.0.1")
    assert refused.returncode != 0, refused.transcript
    assert refused.replies()[0].code == 554, refused.transcript
    allowed = swaks(gw.address, SENDER, ["a@secure.test"], None, "-li", OTHER_LOOPBACK)
    assert allowed.returncode == 0, allowed.transcript
    assert allowed.final.code == 250, allowed.transcript
    assert len(gw.wait_relayed(1)) == 1


# ---- limits


def test_oversize_message_refused_with_552(serve: Callable[..., Gateway]) -> None:
    gw = serve(smtp={"max_message_size": 2000})
    big = message(to=["a@secure.test"], body=("y" * 78 + "\r\n") * 60)
    assert len(big) > 2000
    # smtplib declares SIZE= on MAIL, so the refusal comes at once.
    with gw.smtp() as client:
        assert "size" in client.esmtp_features
        assert client.esmtp_features["size"] == "2000"
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            client.sendmail(SENDER, ["a@secure.test"], big)
    assert refused.value.smtp_code == 552
    # A client that does not declare the size is refused at the end of DATA.
    with raw_session(gw.address) as (session, greeting):
        assert greeting.code == 220, greeting
        session.expect("EHLO raw.school.test", 250)
        session.expect(f"MAIL FROM:<{SENDER}>", 250)
        session.expect("RCPT TO:<a@secure.test>", 250)
        session.expect("DATA", 354)
        session.expect(big + b".\r\n", 552)
    # A message under the limit still goes through.
    small = message(to=["a@secure.test"])
    assert gw.send(SENDER, ["a@secure.test"], small).code == 250
    [relayed] = gw.wait_relayed(1)
    split_trace(relayed.data, small)
    assert gw.holds() == []


def test_swaks_oversize_refused(serve: Callable[..., Gateway], tmp_path: Path) -> None:
    gw = serve(smtp={"max_message_size": 1000})
    data = tmp_path / "big.eml"
    data.write_bytes(message(to=["a@secure.test"], body="z" * 70 + "\r\n") * 20)
    result = swaks(gw.address, SENDER, ["a@secure.test"], data)
    assert result.returncode != 0, result.transcript
    assert result.final.code == 552, result.transcript
    assert gw.relayed() == []


def test_too_many_recipients_gets_452(serve: Callable[..., Gateway]) -> None:
    gw = serve(smtp={"max_recipients": 2})
    recipients = ["a@secure.test", "b@secure.test", "c@secure.test"]
    original = message(to=recipients)
    with gw.smtp() as client:
        assert client.mail(SENDER)[0] == 250
        assert client.rcpt(recipients[0])[0] == 250
        assert client.rcpt(recipients[1])[0] == 250
        code, text = client.rcpt(recipients[2])
        assert (code, text[:5]) == (452, b"4.5.3"), (code, text)
        code, text = client.data(original)
        assert code == 250, text
    [relayed] = gw.wait_relayed(1)
    assert relayed.rcpt_tos == tuple(recipients[:2])
    split_trace(relayed.data, original)


# ---- parameters


def send_with_dsn(gw: Gateway, recipients: list[str], rcpt_options: list[list[str]]) -> bytes:
    original = message(to=recipients)
    with gw.smtp() as client:
        code, text = client.mail(SENDER, ["RET=HDRS", "ENVID=Abc+2Bx"])
        assert code == 250, text
        for recipient, options in zip(recipients, rcpt_options, strict=True):
            code, text = client.rcpt(recipient, options)
            assert code == 250, text
        code, text = client.data(original)
        assert code == 250, text
    return original


DSN_RCPT = ["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;User@Secure.test"]


def test_dsn_parameters_passed_to_upstream_with_case_kept(gw: Gateway) -> None:
    # The first transaction on a new upstream connection: MAIL parameters were once dropped
    # here, checked against the upstream's EHLO extensions before EHLO had been sent.
    original = send_with_dsn(gw, ["user@secure.test"], [DSN_RCPT])
    [relayed] = gw.wait_relayed(1)
    split_trace(relayed.data, original)
    assert relayed.rcpt_options == (tuple(DSN_RCPT),)
    assert relayed.rcpt_lines == (f"RCPT TO:<user@secure.test> {' '.join(DSN_RCPT)}",)
    assert relayed.mail_options == ("RET=HDRS", "ENVID=Abc+2Bx")
    assert relayed.mail_line == f"MAIL FROM:<{SENDER}> RET=HDRS ENVID=Abc+2Bx"


def test_dsn_recipient_parameters_passed_to_upstream_with_case_kept(gw: Gateway) -> None:
    original = send_with_dsn(gw, ["user@secure.test"], [DSN_RCPT])
    [relayed] = gw.wait_relayed(1)
    split_trace(relayed.data, original)
    assert relayed.rcpt_options == (tuple(DSN_RCPT),)
    assert relayed.rcpt_lines == (f"RCPT TO:<user@secure.test> {' '.join(DSN_RCPT)}",)


def test_dsn_mail_parameters_passed_on_a_reused_upstream_connection(gw: Gateway) -> None:
    # The second message rides the pooled connection, which has seen EHLO.
    send_with_dsn(gw, ["user@secure.test"], [DSN_RCPT])
    send_with_dsn(gw, ["user@secure.test"], [DSN_RCPT])
    _, second = gw.wait_relayed(2)
    assert gw.upstream.connections == 1
    assert second.mail_options == ("RET=HDRS", "ENVID=Abc+2Bx")
    assert second.mail_line == f"MAIL FROM:<{SENDER}> RET=HDRS ENVID=Abc+2Bx"


def test_dsn_parameters_kept_per_recipient_in_the_hold(gw: Gateway) -> None:
    recipients = ["user@secure.test", "officer@nosts.test"]
    send_with_dsn(
        gw, recipients, [["NOTIFY=NEVER"], ["NOTIFY=DELAY", "ORCPT=rfc822;Officer@NoSTS.test"]]
    )
    [relayed] = gw.wait_relayed(1)
    assert relayed.rcpt_tos == ("user@secure.test",)
    assert relayed.rcpt_options == (("NOTIFY=NEVER",),)
    [hold] = gw.holds()
    [held] = hold.recipients
    assert held["address"] == "officer@nosts.test"
    assert held["options"] == ["NOTIFY=DELAY", "ORCPT=rfc822;Officer@NoSTS.test"]
    assert hold.mail_options == ["RET=HDRS", "ENVID=Abc+2Bx"]


@pytest.mark.parametrize(
    ("command", "params"),
    [
        ("RCPT", "NOTIFY=SOMETIMES"),
        ("RCPT", "NOTIFY=NEVER,SUCCESS"),
        ("RCPT", "NOTIFY="),
        ("RCPT", "ORCPT=no-semicolon"),
        ("MAIL", "RET=EVERYTHING"),
        ("MAIL", "ENVID=bad+zz"),
    ],
)
def test_malformed_dsn_parameter_gets_501(shared_gw: Gateway, command: str, params: str) -> None:
    gw = shared_gw
    with raw_session(gw.address) as (session, greeting):
        assert greeting.code == 220, greeting
        session.expect("EHLO raw.school.test", 250)
        if command == "RCPT":
            session.expect(f"MAIL FROM:<{SENDER}>", 250)
            reply = session.expect(f"RCPT TO:<user@secure.test> {params}", 501)
        else:
            reply = session.expect(f"MAIL FROM:<{SENDER}> {params}", 501)
        assert reply.text.startswith("5.5.4"), reply
        # The session goes on: a well-formed transaction still works.
        assert session.command("RSET") == Reply(250, "OK")
    assert gw.relayed() == []


@pytest.mark.parametrize(
    ("command", "params"),
    [("MAIL", "ENVID=<e2e-1@school.test>"), ("RCPT", "ORCPT=rfc822;odd>name@nosts.test")],
    ids=["ENVID", "ORCPT"],
)
def test_dsn_parameter_with_angle_bracket_accepted(
    shared_gw: Gateway, command: str, params: str
) -> None:
    # RFC 3461 xtext allows '>' (any of '!'..'~' but '+' and '='): the path ends at its own
    # '>', not at the last one on the line (which once gave 555 and 501).
    gw = shared_gw
    with raw_session(gw.address) as (session, greeting):
        assert greeting.code == 220, greeting
        session.expect("EHLO raw.school.test", 250)
        mail_params = params if command == "MAIL" else ""
        rcpt_params = params if command == "RCPT" else ""
        session.expect(f"MAIL FROM:<{SENDER}> {mail_params}".rstrip(), 250)
        session.expect(f"RCPT TO:<officer@nosts.test> {rcpt_params}".rstrip(), 250)


SMTPUTF8_SENDER = "jörg@school.test"
SMTPUTF8_RECIPIENT = "zoë@secure.test"


def send_smtputf8(gw: Gateway) -> bytes:
    original = message(
        sender=SMTPUTF8_SENDER,
        to=[SMTPUTF8_RECIPIENT],
        subject="Grüße [SECURE]",
        body="Café für Zoë\r\n",
    )
    with gw.smtp() as client:
        assert client.has_extn("smtputf8")
        assert client.has_extn("8bitmime")
        reply = transact(
            client, SMTPUTF8_SENDER, [SMTPUTF8_RECIPIENT], original, ["SMTPUTF8", "BODY=8BITMIME"]
        )
    assert reply.code == 250, reply
    return original


def test_smtputf8_and_8bitmime_accepted(gw: Gateway) -> None:
    original = send_smtputf8(gw)
    [relayed] = gw.wait_relayed(1)
    assert relayed.mail_from == SMTPUTF8_SENDER
    assert relayed.rcpt_tos == (SMTPUTF8_RECIPIENT,)
    trace = split_trace(relayed.data, original)
    assert "UTF8SMTP" in trace[0], trace
    assert gw.holds() == []


def test_smtputf8_and_8bitmime_passed_to_upstream(gw: Gateway) -> None:
    # Non-ASCII addresses and 8-bit data must go out declared, from the first transaction.
    send_smtputf8(gw)
    [relayed] = gw.wait_relayed(1)
    assert set(relayed.mail_options) == {"SMTPUTF8", "BODY=8BITMIME"}


# ---- long lines (RFC 5321 §4.5.3.1: a server may accept more than 1,000 bytes a line)

LONG_HEADER = "DKIM-Signature: v=1; a=rsa-sha256; d=school.test; b=" + "A" * 16_000
LONG_BODY = "w" * 5_000 + "\r\nshort line\r\n" + "q" * 1_500 + "\r\n"


def long_line_message(*, flagged: bool, to: str) -> bytes:
    original = message(to=[to], flagged=flagged, headers=[LONG_HEADER], body=LONG_BODY)
    assert max(len(line) for line in original.split(b"\r\n")) > 16_000
    return original


def test_a_message_with_16k_header_and_5k_body_lines_is_relayed_byte_for_byte(
    gw: Gateway,
) -> None:
    original = long_line_message(flagged=False, to="friend@secure.test")
    reply = gw.send(SENDER, ["friend@secure.test"], original)
    assert reply.code == 250, reply
    [relayed] = gw.wait_relayed(1)
    split_trace(relayed.data, original)  # the original follows the trace, byte for byte


def test_a_flagged_message_with_long_lines_is_held_not_bounced(gw: Gateway) -> None:
    original = long_line_message(flagged=True, to="officer@nosts.test")
    reply = gw.send(SENDER, ["officer@nosts.test"], original)
    assert reply.code == 250, reply
    assert "held for review" in reply.text, reply
    [hold] = gw.holds(of=original)
    assert hold.addresses == ["officer@nosts.test"]
    assert hold.size == len(original)
    assert gw.relayed() == []


def test_past_the_size_limit_long_lines_get_552_and_a_log_line(
    serve: Callable[..., Gateway],
) -> None:
    gw = serve(smtp={"max_message_size": 10_000})
    original = long_line_message(flagged=False, to="friend@secure.test")
    with raw_session(gw.address) as (session, greeting):
        assert greeting.code == 220, greeting
        session.expect("EHLO raw.school.test", 250)
        session.expect(f"MAIL FROM:<{SENDER}>", 250)
        session.expect("RCPT TO:<friend@secure.test>", 250)
        session.expect("DATA", 354)
        refused = session.expect(original + b".\r\n", 552)
        assert refused.text.startswith("5.3.4"), refused
        session.expect("RSET", 250)  # the session goes on
    assert gw.relayed() == []
    assert gw.proc.events("message refused")


# ---- envelope addresses


def test_postmaster_without_a_domain_is_relayed_to_the_local_postmaster(gw: Gateway) -> None:
    # RFC 5321 §4.5.1: RCPT TO:<Postmaster> MUST be accepted; the gateway's postmaster is the
    # one of its first local domain (school.test in the test config).
    original = message(to=["Postmaster"], flagged=False)
    with raw_session(gw.address) as (session, greeting):
        assert greeting.code == 220, greeting
        session.expect("EHLO raw.school.test", 250)
        session.expect(f"MAIL FROM:<{SENDER}>", 250)
        session.expect("RCPT TO:<Postmaster>", 250)
        session.expect("DATA", 354)
        session.expect(original + b".\r\n", 250)
    [relayed] = gw.wait_relayed(1)
    assert relayed.rcpt_tos == ("postmaster@school.test",)
    split_trace(relayed.data, original)


def test_a_non_ascii_recipient_without_smtputf8_is_refused_at_rcpt(gw: Gateway) -> None:
    # RFC 6531 §3.4: 553 5.6.7 at once, so the sender's MTA bounces that one recipient and
    # the others get the message now (not 250, then 451 after DATA on every retry).
    original = message(to=["friend@secure.test"], flagged=False)
    with raw_session(gw.address) as (session, greeting):
        assert greeting.code == 220, greeting
        session.expect("EHLO raw.school.test", 250)
        session.expect(f"MAIL FROM:<{SENDER}>", 250)
        session.expect("RCPT TO:<friend@secure.test>", 250)
        refused = session.expect("RCPT TO:<zoë@secure.test>", 553)
        assert refused.text.startswith("5.6.7"), refused
        session.expect("DATA", 354)
        session.expect(original + b".\r\n", 250)
    [relayed] = gw.wait_relayed(1)
    assert relayed.rcpt_tos == ("friend@secure.test",)
    assert gw.proc.events("address refused", role="recipient")


# ---- SMTP smuggling

SMUGGLED = (
    b"MAIL FROM:<evil@school.test>\r\n"
    b"RCPT TO:<victim@secure.test>\r\n"
    b"DATA\r\n"
    b"From: evil@school.test\r\n"
    b"Subject: smuggled\r\n"
    b"\r\n"
    b"you have been smuggled\r\n"
)


@pytest.mark.parametrize(
    "separator",
    [b"\n.\n", b"\n.\r\n", b"\r\n.\n", b"\r.\r", b"\r.\r\n", b"\r\n.\r", b"\n.\r"],
    ids=repr,
)
def test_bare_line_ending_smuggling_yields_one_message(
    shared_gw: Gateway, separator: bytes
) -> None:
    gw = shared_gw
    # The upstream ends DATA at a lone dot between any line endings, like the receivers
    # smuggling exploits: bare line endings passed through would split the message there.
    gw.upstream.lenient_data_end = True
    head = message(to=["friend@secure.test"], flagged=False, body="")
    payload = head + b"Hello" + separator + SMUGGLED + b".\r\n"
    with raw_session(gw.address) as (session, greeting):
        assert greeting.code == 220, greeting
        session.expect("EHLO raw.school.test", 250)
        session.expect(f"MAIL FROM:<{SENDER}>", 250)
        session.expect("RCPT TO:<friend@secure.test>", 250)
        session.expect("DATA", 354)
        session.send(payload)
        replies = [session.reply()]
        session.send(b"QUIT\r\n")
        replies += session.replies_until_close()
    # One transaction, one answer: 250 to the data, 221 to QUIT, nothing smuggled between.
    assert [r.code for r in replies] == [250, 221], replies
    [relayed] = gw.relayed()
    assert relayed.mail_from == SENDER
    assert relayed.rcpt_tos == ("friend@secure.test",)
    assert not any("evil@" in line for line in gw.upstream.transcript), gw.upstream.transcript
    # The gateway saw one message, and never a transaction from evil@.
    assert not gw.proc.events("message received", sender="evil@school.test")
    message_id = head.split(b"Message-ID: ", 1)[1].split(b"\r\n", 1)[0].decode()
    assert len(gw.proc.events("message received", message_id=message_id)) == 1


def test_lenient_upstream_would_reveal_smuggling(upstream: Upstream) -> None:
    # The check above has teeth: bare line endings reaching this upstream split the message.
    upstream.lenient_data_end = True
    with raw_session((upstream.host, upstream.port)) as (session, greeting):
        assert greeting.code == 220, greeting
        session.expect("EHLO raw.test", 250)
        session.expect(f"MAIL FROM:<{SENDER}>", 250)
        session.expect("RCPT TO:<friend@secure.test>", 250)
        session.expect("DATA", 354)
        session.send(b"Subject: hi\r\n\r\nHello\n.\n" + SMUGGLED + b".\r\nQUIT\r\n")
        session.replies_until_close()
    first, second = upstream.wait_for(2)
    assert (first.mail_from, second.mail_from) == (SENDER, "evil@school.test")


# ---- connections


def test_connection_cap_gets_421(serve: Callable[..., Gateway]) -> None:
    gw = serve(smtp={"max_connections": 1})
    with gw.smtp() as first:
        with raw_session(gw.address) as (_, greeting):
            assert greeting.code == 421, greeting
            assert greeting.text.startswith("4."), greeting
        # The first session is unaffected.
        assert transact(first, SENDER, ["a@secure.test"], message(flagged=False)).code == 250
    # Once it has gone, there is room again (the gateway notices the QUIT at once or soon).
    for _ in range(50):
        with raw_session(gw.address) as (session, greeting):
            if greeting.code == 220:
                session.command("QUIT")
                break
        time.sleep(0.05)
    else:
        pytest.fail("the connection slot was never freed")
