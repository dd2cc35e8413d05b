"""`[notify] confirm_delivery`: the sender of flagged mail is told how each copy left, and only
when it is on; no body ever, the subject only under include_subject, no notice to a bounce."""

from __future__ import annotations

import email
import email.policy

import pytest

from gateway.config.settings import NotifySettings, ReviewSettings
from gateway.review.notices import Notices

PROOF = {
    "recipient": "bob@partner.test",
    "route": "mx",
    "host": "mx1.partner.test",
    "address": "127.0.0.5",
    "tls_version": "TLSv1.3",
    "authenticated": "mta-sts-webpki",
    "at": "2026-12-01T10:02:00+00:00",
}


def notices(**notify: object) -> Notices:
    return Notices(NotifySettings(**notify), ReviewSettings(), "gw.school.test")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("notify", "sender", "sent"),
    [
        ({}, "head@school.test", False),  # off by default
        ({"confirm_delivery": True}, "head@school.test", True),
        ({"confirm_delivery": True, "enabled": False}, "head@school.test", False),
        ({"confirm_delivery": True}, "", False),  # a bounce is never answered
    ],
)
def test_a_confirmation_only_when_asked_for(
    notify: dict[str, object], sender: str, sent: bool
) -> None:
    made = notices(**notify).delivered(sender, "<m1@school.test>", [PROOF], "Referral for J")
    assert bool(made) is sent


@pytest.mark.parametrize(
    ("include_subject", "subject"),
    [(False, "Delivered securely"), (True, "Delivered: Referral for J")],
)
def test_the_confirmation_says_how_each_copy_left(include_subject: bool, subject: str) -> None:
    [notice] = notices(confirm_delivery=True, include_subject=include_subject).delivered(
        "head@school.test", "<m1@school.test>", [PROOF], "Referral for J", "q1"
    )
    assert (notice.kind, notice.recipients) == ("delivered", ("head@school.test",))
    parsed = email.message_from_bytes(notice.message, policy=email.policy.default)
    assert parsed["Subject"] == subject
    assert parsed["In-Reply-To"] == "<m1@school.test>"
    body = parsed.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert (
        "bob@partner.test: delivered to mx1.partner.test over TLS 1.3, "
        "certificate verified by MTA-STS, at " in body
    )
    assert "10:02 UTC" in body
