"""The notices as a mail program reads them: every header a reader sees, the subject in any
script, the body line for line, whatever the held message's subject holds."""

from __future__ import annotations

import email
import email.header
import email.policy
import email.utils
import unicodedata
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config.settings import NotifySettings, ReviewSettings
from gateway.review import fields, mailtext
from gateway.review.notices import Notices
from gateway.store import HeldRecipient, Hold, NewNotice, Status

HOLD = Hold(
    id="0123456789abcdef",
    key="k",
    status=Status.HELD,
    created_at=1_780_000_000.0,
    sender="teacher@school.test",
    recipients=(
        HeldRecipient("carer@nosts.test", "nosts.test", ("sts-no-record",)),
        HeldRecipient("gp@plain.test", "plain.test", ("no-tls", "mx-missing")),
    ),
    mail_options=(),
    size=100,
    client="192.0.2.1",
    message_id="<m@school.test>",
    findings=("subject-marker",),
    subject="Referral for Zebedee Quokka",
)
REVIEWERS = ("dsl@school.test", "deputy@school.test", "head@school.test")


def notices(include_subject: bool = True) -> Notices:
    notify = NotifySettings(include_subject=include_subject, organisation="Oak School")
    return Notices(notify, ReviewSettings(reviewers=REVIEWERS), "gw.test")


def parsed(notice: NewNotice) -> email.message.EmailMessage:
    message = email.message_from_bytes(notice.message, policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    assert not message.defects
    for part in message.walk():
        assert not part.defects
    return message


def body_of(message: email.message.EmailMessage) -> str:
    return str(message.get_content()).replace("\r\n", "\n")


SUBJECTS = [
    ("ascii", "Referral for J", "Held for safeguarding review: Referral for J"),
    ("accents", "Réunion: élève à risque", "Held for safeguarding review: Réunion: élève à risque"),
    ("cyrillic", "Направление", "Held for safeguarding review: Направление"),
    ("emoji", "Case ☃ 🧒 notes", "Held for safeguarding review: Case ☃ 🧒 notes"),
    ("long", "word " * 38, "Held for safeguarding review: " + ("word " * 38).strip()),
    ("encoded word", "=?utf-8?q?=0D=0ABcc:x@evil.test?=", None),
]


@pytest.mark.parametrize(
    ("subject", "expected"), [s[1:] for s in SUBJECTS], ids=[s[0] for s in SUBJECTS]
)
def test_the_senders_notice_reads_as_written_whatever_the_subject(
    subject: str, expected: str | None
) -> None:
    to_sender, to_reviewers = notices().held(replace(HOLD, subject=subject), ["ok@secure.test"])
    message = parsed(to_sender)

    shown = str(message["Subject"])
    if expected is not None:
        assert shown == expected
    assert "\n" not in shown
    assert "Bcc" not in message
    assert str(message["From"]) == "Safeguarding Mail Gateway <postmaster@gw.test>"
    assert str(message["To"]) == "teacher@school.test"
    assert message["MIME-Version"] == "1.0"
    assert message.get_content_type() == "text/plain"
    assert message.get_content_charset() == "utf-8"
    assert message["In-Reply-To"] == "<m@school.test>"
    assert message["References"] == "<m@school.test>"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["X-Safeguarding-Gateway"] == "notice; hold=0123456789abcdef"
    assert email.utils.parsedate_to_datetime(str(message["Date"])).tzinfo is not None
    assert email.utils.parseaddr(str(message["Message-ID"]))[1].endswith("@gw.test")
    lines = body_of(message).split("\n")
    assert "Held for:" in lines
    assert "  carer@nosts.test" in lines
    assert "  gp@plain.test" in lines
    assert "Reference: 0123456789abcdef" in lines
    assert any(line.startswith("The other recipients passed") for line in lines)
    assert to_reviewers.kind == "held-reviewers"


def test_the_reviewers_notice_goes_to_every_reviewer_in_one_to_field() -> None:
    _, to_reviewers = notices().held(HOLD, [])
    message = parsed(to_reviewers)

    assert to_reviewers.recipients == REVIEWERS
    assert [a for _, a in email.utils.getaddresses([str(message["To"])])] == list(REVIEWERS)
    assert str(message["Subject"]) == (
        "Safeguarding hold to review: 0123456789abcdef: Referral for Zebedee Quokka"
    )
    lines = body_of(message).split("\n")
    assert "Review it with: gateway held show 0123456789abcdef" in lines
    assert "  carer@nosts.test" in lines


def test_without_include_subject_the_subject_never_reaches_the_notice() -> None:
    for notice in notices(include_subject=False).held(HOLD, []):
        assert b"Zebedee" not in notice.message
        assert "Zebedee" not in str(parsed(notice)["Subject"])


def test_a_delivery_confirmation_reads_as_written() -> None:
    settings_ = NotifySettings(include_subject=True, confirm_delivery=True)
    built = Notices(settings_, ReviewSettings(reviewers=REVIEWERS), "gw.test")
    proof = {"recipient": "ok@secure.test", "tls": "TLSv1.3"}
    [notice] = built.delivered("teacher@school.test", "<m@school.test>", [proof], "Über")
    message = parsed(notice)
    assert str(message["Subject"]) == "Delivered: Über"
    assert message["In-Reply-To"] == "<m@school.test>"
    assert "  ok@secure.test: " in body_of(message)


_TEXT = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\r"), max_size=300
)


@settings(max_examples=200, deadline=None)
@given(
    # Any text, and text made of what folding and encoded words turn on.
    subject=st.text(max_size=250) | st.text(alphabet="ab ;,\t=?é\u2603", max_size=250),
    body=_TEXT | st.text(alphabet="ab \t\n=.é", max_size=400),
)
def test_any_subject_and_body_come_back_as_they_were_given(subject: str, body: str) -> None:
    shown = fields.one_line(subject)
    text = fields.body_text(body)
    headers = [
        ("From", "Safeguarding Mail Gateway <postmaster@gw.test>"),
        ("To", "a@one.test, b@two.test"),
        ("Subject", shown),
        ("Message-ID", "<n@gw.test>"),
    ]
    message = email.message_from_bytes(mailtext.render(headers, text), policy=email.policy.default)

    assert str(message["Subject"]) == shown
    assert [a for _, a in email.utils.getaddresses([str(message["To"])])] == [
        "a@one.test",
        "b@two.test",
    ]
    expected = "\n".join(text.encode().decode().splitlines()) if text else ""
    got = str(message.get_content()).replace("\r\n", "\n")
    assert got.rstrip("\n") == expected.rstrip("\n")
    for line in mailtext.render(headers, text).split(b"\r\n"):
        assert len(line) <= 998  # RFC 5322 §2.1.1


@settings(max_examples=100, deadline=None)
@given(subject=st.text(max_size=120))
def test_the_direct_rendering_reads_as_the_email_packages_own(subject: str) -> None:
    shown = fields.one_line(subject)
    headers = [("From", "G <postmaster@gw.test>"), ("Subject", shown)]
    ours = email.message_from_bytes(mailtext.render(headers, "x\n"), policy=email.policy.default)
    theirs = email.message_from_bytes(
        mailtext._by_registry(headers, "x\n"), policy=email.policy.default
    )
    assert str(ours["Subject"]) == str(theirs["Subject"])


@settings(max_examples=200, deadline=None)
@given(
    name=st.sampled_from(["Message-ID", "References", "X-Safeguarding-Gateway", "Subject"]),
    value=st.text(alphabet="<>@.=?-_x;, ", min_size=1, max_size=200),
)
def test_a_long_value_is_folded_as_the_email_package_folds_it(name: str, value: str) -> None:
    # A notice's own Message-ID (make_msgid) is one word too long for its first line.
    folded = email.header.Header(value, "us-ascii", header_name=name)
    expected = f"{name}: {folded.encode(linesep=chr(13) + chr(10), maxlinelen=78)}".encode()
    assert mailtext.field(name, value) == expected


def test_a_notices_message_id_reads_back_whole() -> None:
    msgid = email.utils.make_msgid("notice", "gateway.a-long-host-name.school.test")
    headers = [("From", "G <postmaster@gw.test>"), ("Message-ID", msgid)]
    rendered = mailtext.render(headers, "x\n")
    assert b"Message-ID: \r\n <" in rendered  # too long for one line: folded before it
    message = email.message_from_bytes(rendered, policy=email.policy.default)
    assert str(message["Message-ID"]).strip() == msgid


def test_a_structured_field_that_is_not_ascii_is_left_to_the_email_package() -> None:
    headers = [("From", "Gateway <pöstmaster@gw.test>"), ("Subject", "x")]
    assert mailtext.render(headers, "x\n") == mailtext._by_registry(headers, "x\n")


def _kept(ch: str) -> bool:
    return ch == " " or unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Zl", "Zp")


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=200) | st.text(alphabet="a \t\n\u00a0\u200b\u2028=?", max_size=60))
def test_field_values_lose_exactly_the_invisible_characters(text: str) -> None:
    body = "\n".join("".join(c for c in line if c == "\t" or _kept(c)) for line in text.split("\n"))
    assert fields.body_text(text) == body
    spaced = "".join(" " if c.isspace() else c for c in text)
    line = " ".join("".join(c for c in spaced if _kept(c)).split(" "))
    assert fields.one_line(text) == " ".join(line.split()).replace("=?", "= ?")[:200]


@settings(max_examples=200, deadline=None)
@given(
    body=st.text(alphabet="ab =.\u00e9\u2603", min_size=1, max_size=400).map(
        lambda text: "\n".join(text[i : i + 90] for i in range(0, len(text), 90))
    )
)
def test_a_body_with_long_lines_is_encoded_as_the_email_package_chooses(body: str) -> None:
    text = fields.body_text(body)
    headers = [("From", "G <postmaster@gw.test>"), ("Subject", "x")]
    ours = email.message_from_bytes(mailtext.render(headers, text), policy=email.policy.default)
    theirs = email.message_from_bytes(
        mailtext._by_registry(headers, text), policy=email.policy.default
    )
    assert ours["Content-Transfer-Encoding"] == theirs["Content-Transfer-Encoding"]
    assert ours.get_content() == theirs.get_content()
