"""The gateway's own notices carry nothing a held message smuggles into them, through
`gateway serve` and the recording upstream: a Message-ID that is an RFC 2047 encoded word with
``=0D=0A`` in it adds no field and no part to the notices, and (with `[notify]
include_subject`) a CR/LF in an encoded subject neither breaks the hold nor a notice's header.
"""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator

import pytest

from rig import Rig
from rig.gatewayproc import Gateway
from rig.heldcli import INSECURE, SENDER, hold_id, review_gateway, wait_notices_of
from rig.sharedstore import SharedStore
from rig.upstream import Message

pytestmark = [pytest.mark.e2e, pytest.mark.both_backends]

# What an attacker wants the safeguarding lead to read: their Reply-To, and an HTML body.
INJECTED = (
    "=0D=0AReply-To:_attacker@evil.test=0D=0AContent-Type:_text/html=0D=0A=0D=0A"
    "<p>review_at_http://evil.test/</p>"
)


@pytest.fixture(scope="module")
def gw(
    rig: Rig, tmp_path_factory: pytest.TempPathFactory, module_store: SharedStore | None
) -> Iterator[Gateway]:
    with review_gateway(
        rig,
        tmp_path_factory.mktemp("review-injection"),
        module_store,
        notify={"include_subject": True},
    ) as gateway:
        yield gateway


def flagged(message_id: str, subject: str) -> bytes:
    lines = [
        f"From: {SENDER}",
        f"To: {INSECURE}",
        f"Subject: {subject}",
        "Date: Thu, 26 Nov 2026 10:00:00 +0000",
        f"Message-ID: {message_id}",
        "X-Safeguarding: yes",
    ]
    return ("\r\n".join(lines) + "\r\n\r\nThe notes from today.\r\n").encode()


def held_notices(gw: Gateway, data: bytes) -> tuple[str, list[Message]]:
    reply = gw.send(SENDER, [INSECURE], data)
    assert reply.code == 250, f"{reply}\n{gw.proc.output()}"
    hold = hold_id(reply)
    notices = wait_notices_of(gw, hold, 2)
    assert len(notices) == 2, gw.proc.output()  # to the sender, to the reviewers
    return hold, notices


def assert_nothing_injected(notice: Message) -> email.message.EmailMessage:
    parsed = email.message_from_bytes(notice.data, policy=email.policy.default)
    assert isinstance(parsed, email.message.EmailMessage)
    assert parsed["Reply-To"] is None, notice.data
    assert parsed.get_content_type() == "text/plain", notice.data
    assert not parsed.is_multipart()
    body = str(parsed.get_content())
    assert "evil.test" not in body, body
    assert "<p>" not in body, body
    for name, value in parsed.items():
        assert not {"\r", "\n"} & set(value), (name, value)
    return parsed


def test_an_encoded_message_id_adds_no_field_or_part_to_the_notices(gw: Gateway) -> None:
    _, notices = held_notices(gw, flagged(f"=?utf-8?q?<m1@school.test>{INJECTED}?=", "Notes"))
    for notice in notices:
        parsed = assert_nothing_injected(notice)
        assert b"evil.test" not in notice.data, notice.data
        # Not a valid msg-id (RFC 5322 §3.6.4): the notices do not refer to it at all.
        assert parsed["In-Reply-To"] is None
        assert parsed["References"] is None


def test_a_valid_message_id_is_still_referred_to(gw: Gateway) -> None:
    _, notices = held_notices(gw, flagged("<notes-17@school.test>", "Notes"))
    for notice in notices:
        parsed = assert_nothing_injected(notice)
        assert parsed["In-Reply-To"] == "<notes-17@school.test>"
        assert parsed["References"] == "<notes-17@school.test>"


def test_a_line_break_in_an_encoded_subject_neither_breaks_the_hold_nor_a_notice(
    gw: Gateway,
) -> None:
    # Once answered 451 on every retry: the notice could not be built, so nor the hold.
    subject = f"=?utf-8?q?Notes{INJECTED}?="
    hold, notices = held_notices(gw, flagged("<notes-18@school.test>", subject))
    shown = "Notes Reply-To: attacker@evil.test Content-Type: text/html <p>review at http://evil.test/</p>"
    subjects = sorted(str(assert_nothing_injected(n)["Subject"]) for n in notices)
    # The subject as one line of text, as the sender wrote it, line breaks made spaces.
    assert subjects == [
        f"Held for safeguarding review: {shown}",
        f"Safeguarding hold to review: {hold}: {shown}",
    ]
