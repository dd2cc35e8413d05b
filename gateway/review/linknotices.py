"""The emails of a secure link (``gateway.core.securelink``).

Two of them deliver the message, so they go even with ``[notify] enabled = false``: ``link``,
to each recipient, and ``link-code``, the one-time code asked for on the portal. Neither
quotes the held message: the link email names the sender, their organisation and the link; the
code email carries only the code (the link stays in the first email, so that one email alone
never opens the message). The recipient's ``link-reply`` goes to the sender whatever the
setting too: it is a message, not a notice.

The others are notices like those of ``notices``, and follow ``[notify] enabled``: ``linked``
(the sender: sent by secure link), ``linked-reviewers`` (the reviewers: the gateway sent it by
itself), ``link-opened`` (the sender: first opened) and ``link-unopened`` (the sender and the
reviewers: nobody opened it in time, follow it up another way).
"""

from __future__ import annotations

import email.message
import email.policy
import email.utils
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.core.securelink import CODE_LIFETIME, shown_code
from gateway.core.timefmt import day_and_time
from gateway.review import fields
from gateway.review.notices import Notices
from gateway.store import Hold, NewNotice
from gateway.store.links import Link

# The token is the whole secret of the link email; the portal's address comes first.
LINK_PATH = "/m/"


def link_url(public_url: str, token: str) -> str:
    """``<[portal] public_url>/m/<token>``: what the recipient's email links to."""
    return f"{public_url.rstrip('/')}{LINK_PATH}{token}"


@dataclass(frozen=True)
class LinkNotices:
    """Builds the emails of secure links; what it returns goes into the outbox with the
    change that causes it."""

    notices: Notices
    portal_url: str  # [portal] public_url
    unopened_after: float  # [secure_link] unopened_after

    @property
    def sender(self) -> str:
        return self.notices.sender

    def _message(self, kind: str, hold_id: str, to: str, subject: str, body: str) -> bytes:
        message = email.message.EmailMessage(policy=email.policy.SMTP)
        # The organisation names the sender; formataddr quotes whatever its name holds.
        name = f"{fields.one_line(self.notices.organisation, 80)} secure messages"
        message["From"] = email.utils.formataddr((name, self.sender))
        message["To"] = fields.address_list([to])
        message["Subject"] = fields.one_line(subject)
        message["Date"] = email.utils.formatdate(usegmt=True)
        message["Message-ID"] = email.utils.make_msgid(kind, self.notices.hostname)
        message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to this
        message["X-Safeguarding-Gateway"] = f"notice; hold={fields.one_line(hold_id)}"
        message.set_content(fields.body_text(body))
        return message.as_bytes()

    def _always(self, kind: str, hold_id: str, to: str, subject: str, body: str) -> NewNotice:
        return NewNotice(
            kind, hold_id, self.sender, (to,), self._message(kind, hold_id, to, subject, body)
        )

    def _notices(
        self, kind: str, hold: Hold, to: Sequence[str], subject: str, body: str
    ) -> list[NewNotice]:
        return self.notices.notice(kind, hold, list(dict.fromkeys(to)), subject, body)

    # --- to the recipient: the message's delivery ----------------------------------------------

    def link(self, hold: Hold, link: Link, token: str) -> NewNotice:
        """The link email: who sent it, the link, what to expect. Nothing from the body; the
        subject only under ``[notify] include_subject``."""
        organisation = self.notices.organisation
        subject = f"A secure message from {organisation}"
        if self.notices.notify.include_subject and fields.one_line(hold.subject):
            subject += f": {fields.one_line(hold.subject)}"
        sender = fields.mailbox(hold.sender) or "a member of staff"
        body = "\n".join(
            [
                f"{sender} at {organisation} has sent you a message by secure link.",
                "",
                "Your email provider could not be shown to receive email securely, so the "
                "message has not been emailed to you. Read it here:",
                "",
                f"  {link_url(self.portal_url, token)}",
                "",
                "When you open the link, we will send a one-time code to this email address "
                "in a second email. Enter it to read the message, download its attachments "
                "and reply.",
                "",
                f"The link works until {day_and_time(link.expires_at)}. Please do not forward "
                "this email: the link is for you alone.",
                "",
                f"If you did not expect a message from {organisation}, you can ignore this email.",
                "",
                f"Reference: {link.id}",
            ]
        )
        return self._always("link", hold.id, link.recipient, subject, body)

    def code(self, link: Link, code: str) -> NewNotice:
        """The one-time code, asked for on the portal: only the code, never the link."""
        organisation = self.notices.organisation
        body = "\n".join(
            [
                "Your one-time code to read the secure message from " + f"{organisation}:",
                "",
                f"  {shown_code(code)}",
                "",
                f"It is valid for {_span(CODE_LIFETIME)}. Enter it on the page that asked for it.",
                "",
                "If you did not ask for a code, ignore this email: nobody can read the "
                "message without it.",
                "",
                f"Reference: {link.id}",
            ]
        )
        subject = f"Your code for the secure message from {organisation}"
        return self._always("link-code", link.hold_id, link.recipient, subject, body)

    def reply(self, hold: Hold, link: Link, text: str) -> NewNotice:
        """The recipient's reply through the portal, to the sender. From the gateway's own
        address and with no Reply-To: answering it by email would send to a recipient who is
        not reached securely, the very thing the link avoided."""
        body = "\n".join(
            [
                f"{link.recipient} replied through the secure message portal of "
                f"{self.notices.organisation} to your message held on "
                f"{day_and_time(hold.created_at)} (reference {hold.id}).",
                "",
                "They proved they hold this address with a one-time code sent to it. Their "
                "reply, as they wrote it:",
                "",
                "------------------------------------------------------------",
                text,
                "------------------------------------------------------------",
                "",
                "Do not answer this email: it would not reach them securely. Send them a new "
                "message; the gateway will check it as usual.",
            ]
        )
        subject = f"Secure reply from {link.recipient}"
        return self._always("link-reply", hold.id, hold.sender, subject, body)

    # --- notices -------------------------------------------------------------------------------

    def linked(
        self, hold: Hold, by: str, links: Sequence[Link], automatic: bool = False
    ) -> list[NewNotice]:
        """To the sender: the message went by secure link, and what they will hear next."""
        lines = [
            f"Your message held on {day_and_time(hold.created_at)} (reference {hold.id}) "
            f"was sent by secure link {'automatically' if automatic else f'by {by}'} to:",
            "",
        ]
        lines += [f"  {link.recipient} (until {day_and_time(link.expires_at)})" for link in links]
        lines += [
            "",
            "Each of them receives an email with a link, and reads the message after proving "
            "their address with a one-time code. You will be told when each of them first "
            "opens it, or if nobody has opened it after "
            f"{_span(self.unopened_after)}.",
            "",
            f"Reference: {hold.id}",
        ]
        return self._notices("linked", hold, [hold.sender], "Sent by secure link", "\n".join(lines))

    def linked_reviewers(self, hold: Hold, links: Sequence[Link]) -> list[NewNotice]:
        """To the reviewers: the gateway sent a hold by secure link by itself
        (``[secure_link] automatic_for``)."""
        lines = [
            f"A message from {hold.sender or '(no sender)'} was held and sent by secure link "
            "automatically, as [secure_link] automatic_for says for its reasons.",
            "",
            f"Held: {day_and_time(hold.created_at)}",
            "Recipients and reasons:",
        ]
        for recipient in hold.recipients:
            lines.append(f"  {recipient.address}: {', '.join(recipient.reasons)}")
        lines += [
            "",
            *self.notices.review_lines(hold),
            f"Its links: gateway held links {hold.id}; revoke one with "
            "gateway held revoke-link LINK_ID --reason TEXT.",
        ]
        return self._notices(
            "linked-reviewers",
            hold,
            self.notices.review.reviewers,
            f"Sent by secure link automatically: {hold.id}",
            "\n".join(lines),
        )

    def opened(self, hold: Hold, link: Link, at: float) -> list[NewNotice]:
        """To the sender: a recipient first opened the message (after their code)."""
        body = "\n".join(
            [
                f"{link.recipient} opened your message sent by secure link at "
                f"{day_and_time(at)}, after proving their address with a one-time code.",
                "",
                f"Reference: {hold.id} (link {link.id})",
            ]
        )
        return self._notices(
            "link-opened", hold, [hold.sender], f"Opened by {link.recipient}", body
        )

    def unopened_to(self, hold: Hold) -> list[str]:
        """Who is told that a link was not opened: the sender, then the reviewers."""
        return list(dict.fromkeys(a for a in (hold.sender, *self.notices.review.reviewers) if a))

    def unopened(self, hold: Hold, link: Link, waited: float) -> list[NewNotice]:
        """To the sender and reviewers: nobody opened the link in time."""
        body = "\n".join(
            [
                f"The message held on {day_and_time(hold.created_at)} (reference {hold.id}) "
                f"was sent by secure link to {link.recipient} {_span(waited)} ago, "
                "and they have not opened it.",
                "",
                "If the information matters to them, follow it up another way (a telephone "
                "call, a secure email address): do not assume that they have read it.",
                f"The link works until {day_and_time(link.expires_at)}.",
                "",
                *self.notices.review_lines(hold),
            ]
        )
        return self._notices(
            "link-unopened",
            hold,
            self.unopened_to(hold),
            f"Not opened yet: secure message to {link.recipient}",
            body,
        )


def _span(seconds: float) -> str:
    """ "10 minutes", "5 hours", "2 days": how long, in the largest unit that fits."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = int(seconds // size)
            return f"{count} {unit}{'s' * (count != 1)}"
    return f"{int(seconds)} seconds"
