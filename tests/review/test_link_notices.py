"""The emails of a secure link as their readers get them: the recipient's link email and code
email say nothing of the message, go even with [notify] enabled = false, and never carry the
link and the code together; the sender's and reviewers' notices follow [notify] enabled."""

from __future__ import annotations

import email
import email.policy
from dataclasses import replace

import pytest

from gateway.config.settings import NotifySettings, ReviewSettings
from gateway.review.linknotices import LinkNotices, link_url
from gateway.review.notices import Notices
from gateway.store import HeldRecipient, Hold, NewNotice, Status
from gateway.store.links import Link

TOKEN = "T" * 43
CODE = "12345678"
HOLD = Hold(
    id="0123456789abcdef",
    key="k",
    status=Status.LINKED,
    created_at=1_780_000_000.0,
    sender="teacher@school.test",
    recipients=(HeldRecipient("carer@nosts.test", "nosts.test", ("sts-no-record",)),),
    mail_options=(),
    size=100,
    client="192.0.2.1",
    message_id="<m@school.test>",
    findings=("subject-marker",),
    subject="Referral for Zebedee Quokka",
)
LINK = Link(
    "LABCDEFGHIJ", HOLD.id, "carer@nosts.test", "d" * 64, HOLD.created_at, "dsl", 1_781_000_000.0
)


def builder(enabled: bool = True, include_subject: bool = False) -> LinkNotices:
    notify = NotifySettings(
        enabled=enabled, include_subject=include_subject, organisation="Oak School"
    )
    review = ReviewSettings(reviewers=("dsl@school.test",))
    return LinkNotices(Notices(notify, review, "gw.test"), "https://portal.test/", 2 * 86400)


def read(notice: NewNotice) -> tuple[str, str, str]:
    parsed = email.message_from_bytes(notice.message, policy=email.policy.default)
    body = parsed.get_body()
    assert body is not None
    text = str(body.get_content()).replace("\r\n", "\n")
    return str(parsed["Subject"]), str(parsed["To"]), text


def test_the_link_email_names_the_sender_and_the_link_and_nothing_of_the_message() -> None:
    notice = builder().link(HOLD, LINK, TOKEN)
    subject, to, body = read(notice)
    assert notice.kind == "link"
    assert notice.recipients == ("carer@nosts.test",)
    assert to == "carer@nosts.test"
    assert subject == "A secure message from Oak School"
    parsed = email.message_from_bytes(notice.message, policy=email.policy.default)
    assert str(parsed["From"]) == "Oak School secure messages <postmaster@gw.test>"
    assert f"  {link_url('https://portal.test/', TOKEN)}\n" in body
    assert "https://portal.test/m/" + TOKEN in body
    assert "teacher@school.test at Oak School" in body
    assert "one-time code" in body
    assert "second email" in body
    assert "works until" in body
    for secret in ("Zebedee", "Quokka", "Referral"):
        assert secret not in subject + body


def test_the_subject_is_shown_only_when_notify_include_subject_says_so() -> None:
    subject, _, _ = read(builder(include_subject=True).link(HOLD, LINK, TOKEN))
    assert subject == "A secure message from Oak School: Referral for Zebedee Quokka"


def test_the_code_email_carries_the_code_and_never_the_link() -> None:
    notice = builder().code(LINK, CODE)
    subject, to, body = read(notice)
    assert notice.kind == "link-code"
    assert to == "carer@nosts.test"
    assert "1234 5678" in body
    assert "10 minutes" in body
    assert "did not ask" in body
    assert TOKEN not in body
    assert "/m/" not in body
    assert "Zebedee" not in subject + body


def test_the_recipients_emails_go_even_when_notices_are_turned_off() -> None:
    off = builder(enabled=False)
    assert off.link(HOLD, LINK, TOKEN).recipients == ("carer@nosts.test",)
    assert off.code(LINK, CODE).recipients == ("carer@nosts.test",)
    assert off.reply(HOLD, LINK, "Thanks").recipients == ("teacher@school.test",)
    assert off.linked(HOLD, "dsl", [LINK]) == []
    assert off.opened(HOLD, LINK, HOLD.created_at + 60) == []
    assert off.unopened(HOLD, LINK, 2 * 86400) == []


def test_the_reply_goes_to_the_sender_from_the_gateway_with_no_reply_to() -> None:
    notice = builder().reply(HOLD, LINK, "We will collect him at 3pm.\nThanks")
    parsed = email.message_from_bytes(notice.message, policy=email.policy.default)
    assert notice.kind == "link-reply"
    assert notice.recipients == ("teacher@school.test",)
    assert notice.sender == "postmaster@gw.test"
    assert "postmaster@gw.test" in str(parsed["From"])
    assert parsed["Reply-To"] is None
    assert parsed.get_content_type() == "text/plain"
    body = str(parsed.get_content()).replace("\r\n", "\n")
    assert "carer@nosts.test replied through the secure message portal" in body
    assert "one-time code" in body
    assert "We will collect him at 3pm.\nThanks\n" in body


@pytest.mark.parametrize(
    ("kind", "to", "words"),
    [
        ("linked", ("teacher@school.test",), "sent by secure link by dsl to"),
        ("link-opened", ("teacher@school.test",), "carer@nosts.test opened your message"),
        (
            "link-unopened",
            ("teacher@school.test", "dsl@school.test"),
            "they have not opened it",
        ),
        ("linked-reviewers", ("dsl@school.test",), "sent by secure link automatically"),
    ],
)
def test_the_notices_about_a_link(kind: str, to: tuple[str, ...], words: str) -> None:
    made = builder()
    built = {
        "linked": lambda: made.linked(HOLD, "dsl", [LINK]),
        "link-opened": lambda: made.opened(HOLD, LINK, HOLD.created_at + 60),
        "link-unopened": lambda: made.unopened(HOLD, LINK, 2 * 86400),
        "linked-reviewers": lambda: made.linked_reviewers(HOLD, [LINK]),
    }[kind]()
    [notice] = built
    _, _, body = read(notice)
    assert notice.kind == kind
    assert notice.recipients == to
    assert words in body
    assert TOKEN not in body
    assert "Zebedee" not in body


def test_a_bounce_gets_no_notice_about_its_link() -> None:
    bounce = replace(HOLD, sender="")
    assert builder().linked(bounce, "dsl", [LINK]) == []
    [unopened] = builder().unopened(bounce, LINK, 86400)
    assert unopened.recipients == ("dsl@school.test",)
