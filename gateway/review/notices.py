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
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway import logs
from gateway.audit.proofwords import confirmation_words
from gateway.config.settings import NotifySettings, ReviewSettings
from gateway.config.values import describe_duration
from gateway.core.reasons import sender_words
from gateway.core.timefmt import day_and_time, mail_date
from gateway.review import fields, mailtext
from gateway.store import HeldRecipient, Hold, NewNotice

WHY_IT_MATTERS = (
    "Safeguarding information may only be sent from a secure email to a secure email. "
    "We could not prove that the recipients above would receive it securely."
)


def reason_words(reason: str, recipient: HeldRecipient) -> str:
    """What a reason code means to the sender, for this recipient (``core.reasons``)."""
    return sender_words(reason, recipient.domain, recipient.address)


def _reasons_for_reviewers(hold: Hold) -> list[str]:
    """Each held recipient, then each of its reasons in plain words with the code."""
    lines = []
    for recipient in hold.recipients:
        lines.append(f"  {recipient.address}")
        lines += [f"    - {reason_words(r, recipient)} ({r})" for r in recipient.reasons]
    return lines


@dataclass(frozen=True)
class Notices:
    """Builds the notices; what it returns goes into the outbox with the event."""

    notify: NotifySettings
    review: ReviewSettings
    hostname: str
    public_url: str = ""  # [web] public_url: the notices then link to the hold's page

    @property
    def sender(self) -> str:
        return self.notify.from_ or f"postmaster@{self.hostname}"

    @property
    def escalation_contacts(self) -> list[str]:
        """Who is told when a hold waits too long: the escalation contacts, then the
        reviewers, each once."""
        review = self.review
        return list(dict.fromkeys([*review.escalation_contacts, *review.reviewers]))

    def review_lines(self, hold: Hold) -> list[str]:
        """How a reviewer gets to the hold: its page, when the web UI's address is known,
        and the command."""
        lines = [f"Review it with: gateway held show {hold.id}"]
        if self.public_url:
            lines.insert(0, f"Open it: {self.public_url.rstrip('/')}/held/{hold.id}")
        return lines

    @property
    def organisation(self) -> str:
        return self.notify.organisation or self.hostname

    def _subject(self, text: str, hold: Hold) -> str:
        subject = fields.one_line(hold.subject) if self.notify.include_subject else ""
        return f"{text}: {subject}" if subject else text

    def _message(
        self, to: Sequence[str], subject: str, body: str, hold: Hold, *, from_hold: bool = True
    ) -> bytes:
        """The notice as it is sent. Every header value is one line valid for its field
        (``fields``); with ``from_hold`` false, nothing of the held message but its id and
        addresses is used, for the fallback below."""
        headers = [
            ("From", f"Safeguarding Mail Gateway <{self.sender}>"),
            ("To", fields.address_list(to)),
            ("Subject", self._subject(subject, hold) if from_hold else subject),
            ("Date", mail_date(time.time())),
            ("Message-ID", email.utils.make_msgid("notice", self.hostname)),
            ("Auto-Submitted", "auto-generated"),  # RFC 3834: no auto-replies to this
            ("X-Safeguarding-Gateway", f"notice; hold={fields.one_line(hold.id)}"),
        ]
        original = fields.msg_id(hold.message_id) if from_hold else None
        if original:  # RFC 5322 §3.6.4: the held message's id, only if it is a valid msg-id
            headers += [("In-Reply-To", original), ("References", original)]
        return mailtext.render(headers, fields.body_text(body))

    def _notice(
        self, kind: str, hold: Hold, to: Sequence[str], subject: str, body: str
    ) -> list[NewNotice]:
        recipients = [address for address in to if address]
        if not self.notify.enabled or not recipients:
            return []  # a bounce (null sender) is never answered with a notice
        try:
            message = self._message(recipients, subject, body, hold)
        except Exception:
            # A notice is built with the hold it tells of: whatever in the held message
            # defeats it must not make the message impossible to hold.
            logs.get("gateway.notify").exception(
                "notice built without the message's fields", notice=kind, hold_id=hold.id
            )
            ascii_body = body.encode("ascii", "backslashreplace").decode("ascii")
            message = self._message(recipients, subject, ascii_body, hold, from_hold=False)
        return [NewNotice(kind, hold.id, self.sender, tuple(recipients), message)]

    def notice(
        self, kind: str, hold: Hold, to: Sequence[str], subject: str, body: str
    ) -> list[NewNotice]:
        """A notice of ``kind`` about ``hold``, as every notice here is built (``linknotices``)."""
        return self._notice(kind, hold, to, subject, body)

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
        lines += _reasons_for_reviewers(hold)
        lines += [
            "",
            *self.review_lines(hold),
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
                "Reasons:",
                *_reasons_for_reviewers(hold),
                "",
                *self.review_lines(hold),
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

    def delivered(
        self,
        sender: str,
        message_id: str,
        proofs: Sequence[Mapping[str, Any]],
        subject: str = "",
        reference: str = "",
    ) -> list[NewNotice]:
        """``[notify] confirm_delivery``: once every recipient of flagged mail has it, the
        sender is told how each copy travelled (the proof the trail keeps,
        ``deliver.Report.proof``). For the filter's own relay, and for the delivery queue
        when an entry completes. No body; the subject only under ``include_subject``."""
        to = [sender] if sender else []  # a bounce (null sender) is never answered
        if not (self.notify.enabled and self.notify.confirm_delivery and to and proofs):
            return []
        lines = ["Your message was delivered securely:", ""]
        lines += [f"  {p.get('recipient', '?')}: {confirmation_words(p)}" for p in proofs]
        lines += ["", f"Message-ID: {message_id}" if message_id else ""]
        if reference:
            lines.append(f"Reference: {reference}")
        shown = fields.one_line(subject) if self.notify.include_subject else ""
        headers = [
            ("From", f"Safeguarding Mail Gateway <{self.sender}>"),
            ("To", fields.address_list(to)),
            ("Subject", f"Delivered: {shown}" if shown else "Delivered securely"),
            ("Date", mail_date(time.time())),
            ("Message-ID", email.utils.make_msgid("notice", self.hostname)),
            ("Auto-Submitted", "auto-generated"),  # RFC 3834: no auto-replies to this
            ("X-Safeguarding-Gateway", "notice; delivered"),
        ]
        original = fields.msg_id(message_id)
        if original:  # RFC 5322 §3.6.4
            headers += [("In-Reply-To", original), ("References", original)]
        body = fields.body_text("\n".join(lines).rstrip() + "\n")
        return [NewNotice("delivered", "", self.sender, tuple(to), mailtext.render(headers, body))]


def audit_head_notice(
    sender: str, hostname: str, witnesses: Sequence[str], seq: int, head: str, at: float
) -> NewNotice:
    """The audit trail's head for its witnesses ([audit] witnesses): kept in their mailbox, it
    lets ``gateway audit verify --head`` prove later that no entry was cut off the end. It
    names no message, person or decision: only where the trail ended."""
    message = email.message.EmailMessage(policy=email.policy.SMTP)
    message["From"] = f"Safeguarding Mail Gateway <{sender}>"
    message["To"] = fields.address_list(witnesses)
    message["Subject"] = f"Audit trail head {seq} at {fields.one_line(hostname)}"
    message["Date"] = email.utils.formatdate(at, usegmt=True)
    message["Message-ID"] = email.utils.make_msgid("audit-head", hostname)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to this
    message["X-Safeguarding-Gateway"] = "notice; audit-head"
    message.set_content(
        "\n".join(
            [
                f"The audit trail of safeguarding decisions at {hostname} ended here at "
                f"{day_and_time(at)}:",
                "",
                f"  {seq}:{head}",
                "",
                "Please keep this message. You are its witness: should the trail ever be cut "
                "short, this head is the proof of what was there. To check it, the gateway's "
                "operator runs:",
                "",
                f"  gateway audit verify --head {seq}:{head}",
            ]
        ),
        cte="7bit",  # lines under 998 octets (RFC 5322 §2.1.1): the head copies as it reads
    )
    return NewNotice("audit-head", "", sender, tuple(witnesses), message.as_bytes())
