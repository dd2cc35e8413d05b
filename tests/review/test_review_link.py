"""`[web] public_url`: the reviewers' and the escalation notices link to the hold's page, and
still name the command; without it, the command alone."""

from __future__ import annotations

import email
import email.policy

import pytest

from gateway.config import loader
from gateway.config.settings import NotifySettings, ReviewSettings
from gateway.errors import ConfigError
from gateway.review.notices import Notices
from gateway.store import HeldRecipient, Hold, Status

HOLD = Hold(
    id="0123456789abcdef",
    key="k",
    status=Status.HELD,
    created_at=1_780_000_000.0,
    sender="teacher@school.test",
    recipients=(HeldRecipient("worker@nosts.test", "nosts.test", ("sts-no-record",)),),
    mail_options=(),
    size=100,
    client="192.0.2.1",
    message_id="<m@school.test>",
    findings=("subject-marker",),
)
COMMAND = f"Review it with: gateway held show {HOLD.id}"


def bodies(public_url: str) -> dict[str, str]:
    notices = Notices(
        NotifySettings(), ReviewSettings(reviewers=("dsl@school.test",)), "gw.test", public_url
    )
    built = [*notices.held(HOLD, ()), *notices.escalated(HOLD, 5 * 3600)]
    found = {}
    for notice in built:
        message = email.message_from_bytes(notice.message, policy=email.policy.default)
        part = message.get_body(("plain",))
        assert part is not None
        found[notice.kind] = part.get_content()
    return found


@pytest.mark.parametrize(
    ("public_url", "link"),
    [
        ("", None),
        ("https://gateway.school.example", "https://gateway.school.example/held/"),
        ("https://gateway.school.example/", "https://gateway.school.example/held/"),
        ("https://school.example/gateway", "https://school.example/gateway/held/"),
    ],
)
def test_the_reviewers_are_given_the_page_of_the_hold_when_its_address_is_known(
    public_url: str, link: str | None
) -> None:
    found = bodies(public_url)
    for kind in ("held-reviewers", "escalated"):
        assert COMMAND in found[kind]
        if link is None:
            assert "Open it:" not in found[kind]
        else:
            assert f"Open it: {link}{HOLD.id}" in found[kind].splitlines()
    assert "Open it:" not in found["held"]  # the sender has no account to open it with


@pytest.mark.parametrize(
    "value", ["gateway.school.example", "ftp://gateway.school.example", "https://x.example/?a=1"]
)
def test_a_public_url_that_is_not_a_web_address_is_refused(value: str) -> None:
    with pytest.raises(ConfigError, match=r"web\.public_url"):
        loader.load(None, environ={"GATEWAY_WEB_PUBLIC_URL": value})
