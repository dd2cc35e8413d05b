"""Per-recipient actions for a flagged message, and the sender check."""

from __future__ import annotations

import pytest

from gateway.core.model import Action, DomainVerdict, Reason, Transport, Verdict
from gateway.core.policy import SenderCheck, check_sender, decide_recipients

SECURE = DomainVerdict("secure.test", Verdict.SECURE, (), Transport.MTA_STS_ENFORCE)
INSECURE = DomainVerdict("nosts.test", Verdict.NOT_SECURE, (Reason.STS_NO_RECORD,))
UNKNOWN = DomainVerdict("servfail.test", Verdict.UNDETERMINED, (Reason.DNS_TEMPORARY_ERROR,))
VERDICTS = {v.domain: v for v in (SECURE, INSECURE, UNKNOWN)}
ALLOWED = SenderCheck(True, ("school.test",))
REFUSED = SenderCheck(False, ("elsewhere.test",))


@pytest.mark.parametrize(
    ("domain", "sender", "on_temporary", "action", "reasons"),
    [
        ("secure.test", ALLOWED, Action.HOLD, Action.RELAY, ()),
        ("nosts.test", ALLOWED, Action.HOLD, Action.HOLD, (Reason.STS_NO_RECORD,)),
        ("servfail.test", ALLOWED, Action.HOLD, Action.HOLD, (Reason.DNS_TEMPORARY_ERROR,)),
        ("servfail.test", ALLOWED, Action.TEMPFAIL, Action.TEMPFAIL, (Reason.DNS_TEMPORARY_ERROR,)),
        ("secure.test", REFUSED, Action.HOLD, Action.HOLD, (Reason.SENDER_NOT_ALLOWED,)),
        # A sender who may not send flagged mail is held even when DNS is down: no retry
        # would change that.
        (
            "servfail.test",
            REFUSED,
            Action.TEMPFAIL,
            Action.HOLD,
            (Reason.SENDER_NOT_ALLOWED, Reason.DNS_TEMPORARY_ERROR),
        ),
    ],
)
def test_recipient_actions(
    domain: str,
    sender: SenderCheck,
    on_temporary: Action,
    action: Action,
    reasons: tuple[Reason, ...],
) -> None:
    [decision] = decide_recipients([(f"x@{domain}", domain)], VERDICTS, sender, on_temporary)
    assert decision.action is action
    assert decision.reasons == reasons


def test_mixed_recipients_split() -> None:
    decisions = decide_recipients(
        [("a@secure.test", "secure.test"), ("b@nosts.test", "nosts.test")],
        VERDICTS,
        ALLOWED,
        Action.HOLD,
    )
    assert [(d.recipient, d.action) for d in decisions] == [
        ("a@secure.test", Action.RELAY),
        ("b@nosts.test", Action.HOLD),
    ]
    assert decisions[0].transport is Transport.MTA_STS_ENFORCE


def test_unreadable_recipient_is_held() -> None:
    [decision] = decide_recipients([("odd@[192.0.2.1]", None)], VERDICTS, ALLOWED, Action.HOLD)
    assert decision.action is Action.HOLD
    assert decision.reasons == (Reason.RECIPIENT_INVALID,)


@pytest.mark.parametrize(
    ("domains", "allowed"),
    [
        (["school.test", "school.test"], True),
        (["school.test", "partner.test"], True),
        (["school.test", "elsewhere.test"], False),
        (["school.test", None], False),  # a From: that could not be read
        ([], False),  # no sender at all
    ],
)
def test_check_sender(domains: list[str | None], allowed: bool) -> None:
    result = check_sender(domains, lambda d: d in {"school.test", "partner.test"})
    assert result.allowed is allowed
