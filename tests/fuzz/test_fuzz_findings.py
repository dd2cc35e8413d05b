"""What the fuzzer found, pinned as plain examples: each failed on the gateway before issue
14's fixes (long lines bounced, non-ASCII or control characters in addresses taken and then
failed on, a notice to a non-ASCII sender blocking the outbox)."""

from __future__ import annotations

import pytest

from rig.gatewayproc import Gateway, RawSession, Reply, message, raw_session, transact
from rig.heldcli import INSECURE, REVIEWER, wait_notices_of
from rig.upstream import Message

pytestmark = pytest.mark.e2e

UTF8_SENDER = "jörg@school.test"


def _to(recipient: str, notices: list[Message]) -> list[Message]:
    return [n for n in notices if recipient in n.rcpt_tos]


def test_a_hold_from_a_non_ascii_sender_sends_both_notices(fuzz_gateway: Gateway) -> None:
    """Found by the fuzzer: the notice to a sender who wrote with SMTPUTF8 raised outside the
    relay's failure path, was retried for ever, and held up every notice queued behind it
    (issue 14, item 3). It goes out with SMTPUTF8 (RFC 6531 §3.4)."""
    original = message(sender=UTF8_SENDER, to=(INSECURE,), body="Grüße\r\n")
    with fuzz_gateway.smtp() as client:
        reply = transact(client, UTF8_SENDER, [INSECURE], original, ["SMTPUTF8", "BODY=8BITMIME"])
    assert reply.code == 250, reply
    [hold] = fuzz_gateway.holds(of=original)
    notices = wait_notices_of(fuzz_gateway, hold.id, 2)
    [to_sender] = _to(UTF8_SENDER, notices)
    assert "SMTPUTF8" in to_sender.mail_options
    assert len(_to(REVIEWER, notices)) == 1


def _data(session: RawSession, sender: str, recipient: str, body: bytes) -> Reply:
    session.expect("EHLO client.school.test", 250)
    session.expect(f"MAIL FROM:<{sender}>", 250)
    session.expect(f"RCPT TO:<{recipient}>", 250)
    session.expect("DATA", 354)
    return session.command(body + b".\r\n")


@pytest.mark.parametrize("where", ["header", "body"])
def test_a_flagged_message_with_a_long_line_is_held_not_bounced(
    fuzz_gateway: Gateway, where: str
) -> None:
    long_line = "x" * 1500
    headers = [f"X-Long: {long_line}"] if where == "header" else []
    body = f"{long_line}\r\n" if where == "body" else "short\r\n"
    original = message(to=(INSECURE,), headers=headers, body=body)
    with raw_session(fuzz_gateway.address) as (session, _):
        reply = _data(session, "head@school.test", INSECURE, original)
    assert reply.code == 250, reply
    assert len(fuzz_gateway.holds(of=original)) == 1


@pytest.mark.parametrize("command", ["MAIL FROM:<jörg@school.test>", "RCPT TO:<zoë@nosts.test>"])
def test_a_non_ascii_address_without_smtputf8_gets_553_5_6_7(
    fuzz_gateway: Gateway, command: str
) -> None:
    with raw_session(fuzz_gateway.address) as (session, _):
        session.expect("EHLO client.school.test", 250)
        if command.startswith("RCPT"):
            session.expect("MAIL FROM:<head@school.test>", 250)
        reply = session.command(command.encode() + b"\r\n")
    assert reply.code == 553, reply
    assert reply.text.startswith("5.6.7"), reply


def test_a_recipient_with_control_characters_gets_553(fuzz_gateway: Gateway) -> None:
    """Found by the fuzzer: the relay then fails on it with an unexpected error."""
    with raw_session(fuzz_gateway.address) as (session, _):
        session.expect("EHLO client.school.test", 250)
        session.expect("MAIL FROM:<head@school.test>", 250)
        reply = session.command(b"RCPT TO:<e\x17\x7f@school.test>\r\n")
    assert reply.code == 553, reply
