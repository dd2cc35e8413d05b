"""`gateway serve` end to end: what is relayed, what is held, and what the client is told.

The gateway runs as a process against the rig's DNS (knot + unbound) and HTTPS (nginx) servers
and a recording upstream on loopback; clients are smtplib and swaks. Domains come from the zone
table (rig/zones.py): secure.test is secure, nosts.test is not secure, unlisted.test has
a secure transport but is not on the allowlist, servfail.test cannot be resolved (SERVFAIL).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from rig.gatewayproc import Gateway, message, readable, split_trace, swaks

pytestmark = pytest.mark.e2e

SENDER = "head@school.test"
HOLD_ID = re.compile(r"held for review as ([0-9a-f]+)")


def hold_id(reply_text: str) -> str:
    match = HOLD_ID.search(reply_text)
    assert match, f"the reply names no hold: {reply_text!r}"
    return match.group(1)


def test_secure_recipient_relayed_byte_for_byte(gw: Gateway) -> None:
    original = message(
        to=["colleague@secure.test"],
        headers=[
            "DKIM-Signature: v=1; a=rsa-sha256; d=school.test; s=sel;",
            "\tbh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=AbC",
            "X-Trailing-Space: kept   ",
        ],
        body=(
            "Line one.\r\n"
            ".a line starting with a dot\r\n"
            "..two dots\r\n"
            ".\r\n"
            "\ttabbed and trailing  \r\n"
            "Zoë's café — 8-bit UTF-8\r\n"
            "\r\n"
            "last line\r\n"
        ),
    )
    reply = gw.send(SENDER, ["colleague@secure.test"], original, ["BODY=8BITMIME"])
    assert reply.code == 250, reply
    assert "relayed" in reply.text
    [relayed] = gw.wait_relayed(1)
    assert relayed.mail_from == SENDER
    assert relayed.rcpt_tos == ("colleague@secure.test",)
    trace = split_trace(relayed.data, original)
    assert [f.split(":", 1)[0] for f in trace] == ["Received", "X-Safeguarding-Gateway"], trace
    assert trace[0].startswith("Received: from client.school.test ([127.0.0.1])"), trace
    assert "by gateway.test" in trace[0]
    assert "flagged" in trace[1]
    assert gw.holds() == []
    assert len(gw.relayed()) == 1


def test_insecure_recipient_held(gw: Gateway) -> None:
    original = message(to=["officer@nosts.test"])
    reply = gw.send(SENDER, ["officer@nosts.test"], original)
    assert reply.code == 250, reply
    [hold] = gw.holds()
    assert hold_id(reply.text) == hold.id
    assert hold.addresses == ["officer@nosts.test"]
    assert hold.reasons("officer@nosts.test") == ["sts-no-record"]
    assert hold.sender == SENDER
    assert len(gw.held_bodies()) == 1
    assert gw.relayed() == []


def test_mixed_recipients_split(gw: Gateway) -> None:
    recipients = ["colleague@secure.test", "officer@nosts.test"]
    original = message(to=recipients)
    reply = gw.send(SENDER, recipients, original)
    assert reply.code == 250, reply
    # One reply for two fates: it names the relay and the hold.
    assert "relayed" in reply.text, reply
    [hold] = gw.holds()
    assert hold_id(reply.text) == hold.id
    assert hold.addresses == ["officer@nosts.test"]
    [relayed] = gw.wait_relayed(1)
    assert relayed.rcpt_tos == ("colleague@secure.test",)
    split_trace(relayed.data, original)
    assert len(gw.relayed()) == 1


def test_unflagged_passes_untouched_to_any_domain(gw: Gateway) -> None:
    recipients = [
        "a@secure.test",
        "b@nosts.test",
        "c@unlisted.test",
        "d@servfail.test",
        "e@nowhere.invalid",
    ]
    original = message(to=recipients, flagged=False, headers=["X-Safeguarding: no"])
    reply = gw.send(SENDER, recipients, original)
    assert reply.code == 250, reply
    [relayed] = gw.wait_relayed(1)
    assert relayed.rcpt_tos == tuple(recipients)
    trace = split_trace(relayed.data, original)
    assert [f.split(":", 1)[0] for f in trace] == ["Received", "X-Safeguarding-Gateway"]
    assert "not flagged" in trace[1]
    assert gw.holds() == []


@pytest.mark.parametrize(
    ("envelope", "header_from"),
    [
        ("someone@unlisted.test", "someone@unlisted.test"),
        (SENDER, "someone@unlisted.test"),
        ("someone@unlisted.test", SENDER),
    ],
    ids=["both", "from-header", "envelope"],
)
def test_sender_domain_not_allowed_is_held(
    shared_gw: Gateway, envelope: str, header_from: str
) -> None:
    gw = shared_gw
    original = message(sender=header_from, to=["colleague@secure.test"])
    reply = gw.send(envelope, ["colleague@secure.test"], original)
    assert reply.code == 250, reply
    [hold] = gw.holds(of=original)
    assert hold_id(reply.text) == hold.id
    assert "sender-not-allowed" in hold.reasons("colleague@secure.test")
    assert gw.relayed(of=original) == []


@pytest.mark.parametrize(
    "change",
    [
        (b"From: head@school.test\r\n", b""),
        (b"From: head@school.test\r\n", b"From: head@school.test\r\nFrom: x@school.test\r\n"),
        (b"From: head@school.test", b"From: head@school.test, eve@unlisted.test"),
        (b"From: head@school.test", b'From: "head@school.test" <eve@unlisted.test>'),
    ],
    ids=["no-from", "two-from-fields", "second-author-unlisted", "display-name-trick"],
)
def test_unreadable_or_unlisted_from_header_is_held(
    shared_gw: Gateway, change: tuple[bytes, bytes]
) -> None:
    gw = shared_gw
    original = message(to=["colleague@secure.test"]).replace(*change)
    reply = gw.send(SENDER, ["colleague@secure.test"], original)
    assert reply.code == 250, reply
    [hold] = gw.holds(of=original)
    assert "sender-not-allowed" in hold.reasons("colleague@secure.test")
    assert gw.relayed(of=original) == []


def test_allowlisted_sender_domain_may_send(gw: Gateway) -> None:
    # Not a local domain, but on the allowlist: a partner relaying through us.
    original = message(sender="partner@secure.test", to=["colleague@secure.test"])
    reply = gw.send("partner@secure.test", ["colleague@secure.test"], original)
    assert reply.code == 250, reply
    assert len(gw.wait_relayed(1)) == 1
    assert gw.holds() == []


@pytest.mark.parametrize(
    "recipient",
    ["User@SECURE.Test", '"john doe"@secure.test', "a.b+tag@multistring.test"],
    ids=["domain-case", "quoted-local-part", "plus-tag"],
)
def test_secure_recipient_spellings_relayed_as_given(shared_gw: Gateway, recipient: str) -> None:
    gw = shared_gw
    original = message(to=[recipient])
    reply = gw.send(SENDER, [recipient], original)
    assert reply.code == 250, reply
    [relayed] = gw.wait_relayed(1, of=original)
    assert relayed.rcpt_tos == (recipient,)
    assert gw.holds(of=original) == []


def test_null_sender_unflagged_relayed(gw: Gateway) -> None:
    original = message(to=["a@nosts.test"], flagged=False, subject="Delivery Status Notification")
    reply = gw.send("<>", ["a@nosts.test"], original)
    assert reply.code == 250, reply
    [relayed] = gw.wait_relayed(1)
    assert relayed.mail_from == ""
    assert relayed.mail_line == "MAIL FROM:<>"


def test_dns_servfail_is_held(gw: Gateway) -> None:
    original = message(to=["someone@servfail.test"])
    reply = gw.send(SENDER, ["someone@servfail.test"], original)
    assert reply.code == 250, reply
    [hold] = gw.holds()
    assert hold.reasons("someone@servfail.test") == ["dns-temporary-error"]
    assert gw.relayed() == []


def test_dns_servfail_tempfails_when_configured(serve: Callable[..., Gateway]) -> None:
    gw = serve(policy={"on_dns_error": "tempfail"})
    recipients = ["colleague@secure.test", "someone@servfail.test"]
    reply = gw.send(SENDER, recipients, message(to=recipients))
    assert reply.code == 451, reply
    assert reply.text.startswith("4."), reply
    assert gw.holds() == []
    assert gw.relayed() == []


def test_retrying_a_held_message_makes_no_second_hold(gw: Gateway) -> None:
    original = message(to=["officer@nosts.test"])
    first = gw.send(SENDER, ["officer@nosts.test"], original)
    second = gw.send(SENDER, ["officer@nosts.test"], original)
    assert (first.code, second.code) == (250, 250), (first, second)
    assert hold_id(first.text) == hold_id(second.text)
    assert len(gw.holds()) == 1
    assert len(gw.held_bodies()) == 1


def test_a_different_message_is_a_different_hold(gw: Gateway) -> None:
    for _ in range(2):
        reply = gw.send(SENDER, ["officer@nosts.test"], message(to=["officer@nosts.test"]))
        assert reply.code == 250, reply
    assert len(gw.holds()) == 2


# Each variant goes to unlisted.test (secure transport, not on the allowlist): flagged mail is
# held, unflagged mail is relayed.
CLASSIFY_CASES = [
    ("header yes", ["X-Safeguarding: yes"], "Case notes", True),
    ("header YES", ["X-Safeguarding: YES"], "Case notes", True),
    ("header true", ["X-Safeguarding: true"], "Case notes", True),
    ("header no", ["X-Safeguarding: no"], "Case notes", False),
    ("no header", [], "Case notes", False),
    ("(secure)", [], "(secure) Case notes", True),
    ("{Encrypt}", [], "{Encrypt} Case notes", True),
    ("[OFFICIAL-SENSITIVE]", [], "[OFFICIAL-SENSITIVE] Case notes", True),
    ("[ Safeguarding ]", [], "Re: [ Safeguarding ] Case notes", True),
    ("encoded [SECURE]", [], "=?utf-8?q?=5BSECURE=5D_Case_notes?=", True),
    ("header no space", ["X-Safeguarding:yes"], "Case notes", True),
    ("header folded", ["X-Safeguarding:", " yes"], "Case notes", True),
    ("header name lower case", ["x-safeguarding: yes"], "Case notes", True),
    ("header yes and no", ["X-Safeguarding: no", "X-Safeguarding: yes"], "Case notes", True),
    ("header maybe", ["X-Safeguarding: maybe"], "Case notes", False),
    ("base64 [SECURE]", [], "=?UTF-8?B?W1NFQ1VSRV0gQ2FzZSBub3Rlcw==?=", True),
    ("malformed header line", ["This line is not a header field"], "Case notes", True),
    ("secure no brackets", [], "secure Case notes", False),
    ("mismatched brackets", [], "[secure) Case notes", False),
    ("insecure word", [], "[insecure] Case notes", False),
]


@pytest.mark.parametrize(
    ("headers", "subject", "flagged"),
    [case[1:] for case in CLASSIFY_CASES],
    ids=[case[0] for case in CLASSIFY_CASES],
)
def test_classification(
    shared_gw: Gateway, headers: list[str], subject: str, flagged: bool
) -> None:
    gw = shared_gw
    original = message(to=["pat@unlisted.test"], subject=subject, flagged=False, headers=headers)
    reply = gw.send(SENDER, ["pat@unlisted.test"], original)
    assert reply.code == 250, reply
    holds = gw.holds(of=original)
    if flagged:
        [hold] = holds
        assert hold_id(reply.text) == hold.id
        assert hold.reasons("pat@unlisted.test") == ["not-allowlisted"]
        assert gw.relayed(of=original) == []
    else:
        assert holds == []
        [relayed] = gw.wait_relayed(1, of=original)
        assert relayed.rcpt_tos == ("pat@unlisted.test",)
        split_trace(relayed.data, original)


# ---- swaks, a real command-line client


def test_swaks_secure_relayed_and_insecure_held(gw: Gateway) -> None:
    result = swaks(
        gw.address,
        SENDER,
        ["colleague@secure.test", "officer@nosts.test"],
        None,
        "--add-header",
        "X-Safeguarding: yes",
        "--body",
        "Sent by swaks.",
    )
    assert result.returncode == 0, result.transcript
    assert result.final.code == 250, result.transcript
    assert "relayed" in result.final.text, result.transcript
    [hold] = gw.holds()
    assert hold.id in result.final.text
    assert hold.addresses == ["officer@nosts.test"]
    [relayed] = gw.wait_relayed(1)
    assert relayed.rcpt_tos == ("colleague@secure.test",)
    assert relayed.helo == "gateway.test"
    assert b"Sent by swaks." in relayed.data
    assert relayed.data.startswith(b"Received: from swaks.school.test ([127.0.0.1])")


def test_swaks_unflagged_relayed(gw: Gateway, tmp_path: Path) -> None:
    original = message(to=["pat@unlisted.test"], flagged=False)
    data = tmp_path / "message.eml"
    data.write_bytes(original.removesuffix(b"\r\n"))  # swaks ends the data with CRLF itself
    result = swaks(gw.address, SENDER, ["pat@unlisted.test"], data)
    assert result.returncode == 0, result.transcript
    assert result.final.code == 250, result.transcript
    [relayed] = gw.wait_relayed(1)
    split_trace(relayed.data, original)
    assert gw.holds() == []


# ---- the sender is told about a hold


def test_held_message_notifies_the_sender_once(gw: Gateway) -> None:
    recipients = ["colleague@secure.test", "officer@nosts.test"]
    original = message(to=recipients)
    reply = gw.send(SENDER, recipients, original)
    assert reply.code == 250, reply
    [hold] = gw.holds()
    [notice] = gw.wait_notices(1)
    assert notice.rcpt_tos == (SENDER,)
    text = readable(notice)
    assert f"X-Safeguarding-Gateway: notice; hold={hold.id}" in text
    assert f"In-Reply-To: {hold.message_id}" in text
    assert "Auto-Submitted: auto-generated" in text
    assert "officer@nosts.test" in text  # who it is held for ...
    assert "nosts.test does not publish an MTA-STS policy" in text  # ... and why, in words
    # The recipient that was not held is named, but not as delivered: the notice is written
    # with the hold, before the upstream has taken the message.
    assert "colleague@secure.test" in text
    assert "Sent at once" not in text
    assert hold.id in text
    # The client's retry makes neither a second hold nor a second notice.
    assert gw.send(SENDER, recipients, original).code == 250
    assert len(gw.wait_notices(1)) == 1
    assert len(gw.holds()) == 1
    assert len(gw.relayed()) == 1


def test_held_bounce_gets_no_notice(gw: Gateway) -> None:
    # A null reverse-path (a bounce) is never answered with mail: RFC 5321 §4.5.5.
    original = message(to=["officer@nosts.test"])
    reply = gw.send("<>", ["officer@nosts.test"], original)
    assert reply.code == 250, reply
    [hold] = gw.holds()
    assert hold.sender == ""
    gw.proc.wait_event("held")
    assert gw.wait_notices(0) == []
