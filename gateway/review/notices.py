"""Notices: nobody is left assuming someone else acted.

The sender is told when a message is held (which recipients, why in plain words, what happens
next) and when it is released, rejected or expires; reviewers are told when something is held;
escalation contacts when a hold waits too long. A notice never quotes the body, and shows the
subject only if ``[notify] include_subject`` is set. Notices are queued in the store's outbox
in the same transaction as the event, and sent through the upstream by ``Outbox``.
"""

from __future__ import annotations

import email.message
import email.policy
import email.utils
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.config.settings import NotifySettings, ReviewSettings
from gateway.config.values import describe_duration
from gateway.core.reasons import sender_words
from gateway.core.timefmt import day_and_time
from gateway.store import HeldRecipient, Hold, NewNotice

WHY_IT_MATTERS = (
    "Safeguarding information may only be sent from a secure email to a secure email. "
    "We could not prove that the recipients above would receive it securely."
)


def reason_words(reason: str, recipient: HeldRecipient) -> str:
    """What a reason code means to the sender, for this recipient (``core.reasons``)."""
    return sender_words(reason, recipient.domain, recipient.address)


@dataclass(frozen=True)
class Notices:
    """Builds the notices; what it returns goes into the outbox with the event."""

    notify: NotifySettings
    review: ReviewSettings
    hostname: str

    @property
    def sender(self) -> str:
        return self.notify.from_ or f"postmaster@{self.hostname}"

    @property
    def escalation_contacts(self) -> list[str]:
        """Who is told when a hold waits too long: the escalation contacts, then the
        reviewers, each once."""
        review = self.review
        return list(dict.fromkeys([*review.escalation_contacts, *review.reviewers]))

    @property
    def organisation(self) -> str:
        return self.notify.organisation or self.hostname

    def _subject(self, text: str, hold: Hold) -> str:
        if self.notify.include_subject and hold.subject:
            return f"{text}: {hold.subject}"
        return text

    def _message(self, to: Sequence[str], subject: str, body: str, hold: Hold) -> bytes:
        message = email.message.EmailMessage(policy=email.policy.SMTP)
        message["From"] = f"Safeguarding Mail Gateway <{self.sender}>"
        message["To"] = ", ".join(to)
        message["Subject"] = subject
        message["Date"] = email.utils.formatdate(usegmt=True)
        message["Message-ID"] = email.utils.make_msgid("notice", self.hostname)
        message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to this
        message["X-Safeguarding-Gateway"] = f"notice; hold={hold.id}"
        if hold.message_id:
            message["In-Reply-To"] = hold.message_id
            message["References"] = hold.message_id
        message.set_content(body)
        return message.as_bytes()

    def _notice(
        self, kind: str, hold: Hold, to: Sequence[str], subject: str, body: str
    ) -> list[NewNotice]:
        recipients = [address for address in to if address]
        if not self.notify.enabled or not recipients:
            return []  # a bounce (null sender) is never answered with a notice
        message = self._message(recipients, self._subject(subject, hold), body, hold)
        return [NewNotice(kind, hold.id, self.sender, tuple(recipients), message)]

    def held(self, hold: Hold, relayed_to: Sequence[str]) -> list[NewNotice]:
        lines = [
            "Your message has not been sent to some of its recipients yet.",
            "",
            f"Sent: {day_and_time(hold.created_at)}",
            "",
            "Held for:",
        ]
        for recipient in hold.recipients:
            lines.append(f"  {recipient.address}")
            lines += [f"    - {reason_words(r, recipient)}" for r in recipient.reasons]
        if relayed_to:
            # Not "sent to": the upstream has yet to take it, and may refuse it.
            lines += [
                "",
                "The other recipients passed the checks and were not held: "
                + ", ".join(relayed_to),
            ]
        lines += [
            "",
            WHY_IT_MATTERS,
            "",
            f"What happens next: a safeguarding lead at {self.organisation} will review it. "
            "They will either release it, with a written record of why, or reject it, and "
            "you will be told which. You do not need to send it again.",
            "",
            "If the information is urgent, speak to your designated safeguarding lead now: "
            "do not assume that someone else will pass it on.",
            "",
            f"Reference: {hold.id}",
        ]
        to_sender = self._notice(
            "held", hold, [hold.sender], "Held for safeguarding review", "\n".join(lines)
        )
        return to_sender + self._reviewers(hold)

    def _reviewers(self, hold: Hold) -> list[NewNotice]:
        review = self.review
        lines = [
            f"A message from {hold.sender or '(no sender)'} is held for review.",
            "",
            f"Held: {day_and_time(hold.created_at)}",
            "Recipients and reasons:",
        ]
        for recipient in hold.recipients:
            lines.append(f"  {recipient.address}")
            lines += [f"    - {reason_words(r, recipient)} ({r})" for r in recipient.reasons]
        lines += [
            "",
            f"Review it with: gateway held show {hold.id}",
            "Release needs a written rationale; a reject needs a reason the sender is told.",
            f"If nobody reviews it within {describe_duration(review.escalate_after)}, it is "
            f"escalated; after {describe_duration(review.expire_after)} it expires unsent.",
        ]
        return self._notice(
            "held-reviewers",
            hold,
            review.reviewers,
            f"Safeguarding hold to review: {hold.id}",
            "\n".join(lines),
        )

    def released(
        self, hold: Hold, by: str, delivered: Sequence[str], refused: dict[str, str]
    ) -> list[NewNotice]:
        lines = [
            f"Your message held on {day_and_time(hold.created_at)} (reference {hold.id}) "
            f"was reviewed and released by {by}.",
            "",
        ]
        if delivered:
            lines.append("It has now been sent to: " + ", ".join(delivered))
        if refused:
            lines += ["", "Our mail server could not pass it on to:"]
            lines += [f"  {address}: {reply}" for address, reply in refused.items()]
            lines += ["", "Please find another secure way to share it with them."]
        return self._notice(
            "released", hold, [hold.sender], "Released after review", "\n".join(lines)
        )

    def rejected(self, hold: Hold, by: str, reason: str) -> list[NewNotice]:
        recipients = ", ".join(r.address for r in hold.recipients)
        body = "\n".join(
            [
                f"Your message held on {day_and_time(hold.created_at)} (reference {hold.id}) "
                f"was reviewed by {by} and will not be sent to {recipients}.",
                "",
                f"Reason: {reason}",
                "",
                "If the information still needs to reach them, speak to your designated "
                "safeguarding lead about a secure way to share it: do not assume that someone "
                "else will pass it on.",
            ]
        )
        return self._notice("rejected", hold, [hold.sender], "Not sent after review", body)

    def expired(self, hold: Hold) -> list[NewNotice]:
        recipients = ", ".join(r.address for r in hold.recipients)
        body = "\n".join(
            [
                f"Your message held on {day_and_time(hold.created_at)} (reference {hold.id}) "
                f"was not reviewed within {describe_duration(self.review.expire_after)} and has "
                f"not been sent to {recipients}.",
                "",
                "If the information still needs to reach them, speak to your designated "
                "safeguarding lead now about a secure way to share it.",
            ]
        )
        return self._notice("expired", hold, [hold.sender], "Not sent: review time ran out", body)

    def escalated(self, hold: Hold, waited: float) -> list[NewNotice]:
        review = self.review
        body = "\n".join(
            [
                f"A safeguarding hold has waited {waited / 3600:.1f} hours for review.",
                "",
                f"From: {hold.sender or '(no sender)'}",
                "To: " + ", ".join(r.address for r in hold.recipients),
                f"Reasons: {', '.join(hold.reasons)}",
                "",
                f"Review it with: gateway held show {hold.id}",
                f"It expires unsent after {describe_duration(review.expire_after)}.",
            ]
        )
        return self._notice(
            "escalated",
            hold,
            self.escalation_contacts,
            f"Escalated: safeguarding hold {hold.id} awaits review",
            body,
        )
