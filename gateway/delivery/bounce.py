"""The non-delivery notice: once the gateway has said 250 for a message, a recipient it cannot
deliver to is never dropped in silence; the sender is told, in plain words, in an RFC 3464
report (multipart/report; report-type=delivery-status) so mail programs also show it as one.

Sent with the null reverse-path (RFC 5321 §4.5.5), so a bounce of it is never bounced back,
and never to a message that itself came with the null reverse-path. Like every notice it never
quotes the body, and shows the subject only with ``[notify] include_subject``; the report
leaves out the optional third part (the original's header), which would carry the subject.
"""

from __future__ import annotations

import email.message
import email.policy
import email.utils
import re
from collections.abc import Mapping

from gateway.core.timefmt import day_and_time
from gateway.review import fields
from gateway.review.notices import Notices
from gateway.store import NewNotice, Queued

KIND = "not-delivered"
_ENHANCED = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")


def non_delivery(
    notices: Notices, entry: Queued, failed: Mapping[str, str], why: str
) -> list[NewNotice]:
    """The notice for ``failed`` (recipient -> the last answer or error); ``why`` says in a
    sentence what happened (refused, gave up after a time, removed by an operator)."""
    if not entry.sender or not failed:
        return []
    message = email.message.EmailMessage(policy=email.policy.SMTP)
    message["From"] = f"Mail Delivery System <{notices.sender}>"
    message["To"] = fields.address_list([entry.sender])
    subject = fields.one_line(entry.subject) if notices.notify.include_subject else ""
    message["Subject"] = f"Not delivered: {subject}" if subject else "Not delivered"
    message["Date"] = email.utils.formatdate(usegmt=True)
    message["Message-ID"] = email.utils.make_msgid("ndn", notices.hostname)
    message["Auto-Submitted"] = "auto-replied"  # RFC 3834 §5: a reply made by a program
    message["X-Safeguarding-Gateway"] = f"notice; queue={fields.one_line(entry.id)}"
    original = fields.msg_id(entry.message_id)
    if original:
        message["In-Reply-To"] = original
        message["References"] = original
    message.set_content(fields.body_text(_words(notices, entry, failed, why)))
    message.make_mixed()
    message.set_type("multipart/report")
    message.set_param("report-type", "delivery-status")  # RFC 3462 §2
    message.attach(_status(notices.hostname, entry, failed))
    return [NewNotice(KIND, "", "", (entry.sender,), message.as_bytes())]


def _words(notices: Notices, entry: Queued, failed: Mapping[str, str], why: str) -> str:
    lines = [
        "Your message could not be delivered to some of its recipients.",
        "",
        f"Sent: {day_and_time(entry.created_at)}",
        "",
        "Not delivered to:",
    ]
    for address, reply in failed.items():
        lines += [f"  {address}", f"    - {reply}"]
    lines += [
        "",
        why,
        "",
        "If the information still needs to reach them, find another way to share it, and "
        f"speak to your designated safeguarding lead at {notices.organisation} if it is about "
        "a child: do not assume that someone else will pass it on.",
        "",
        f"Reference: {entry.id}",
    ]
    return "\n".join(lines)


def _status(hostname: str, entry: Queued, failed: Mapping[str, str]) -> email.message.EmailMessage:
    """The machine-readable part (RFC 3464 §2.2, §2.3): one block for the message, one per
    recipient."""
    part = email.message.EmailMessage(policy=email.policy.SMTP)
    part["Content-Type"] = "message/delivery-status"
    first = email.message.Message()
    blocks: list[email.message.Message | str] = [first]
    first["Reporting-MTA"] = f"dns; {fields.one_line(hostname)}"
    first["Arrival-Date"] = email.utils.formatdate(entry.created_at, usegmt=True)
    for address, reply in failed.items():
        block = email.message.Message()
        block["Final-Recipient"] = f"rfc822; {fields.one_line(address)}"
        block["Action"] = "failed"
        block["Status"] = status_code(reply)
        block["Diagnostic-Code"] = f"smtp; {fields.one_line(reply, 900)}"
        blocks.append(block)
    part.set_payload(blocks)
    return part


def status_code(reply: str) -> str:
    """The enhanced status code (RFC 3463) in the reply, made permanent: the recipient has
    failed for good; 5.0.0 when the reply has none."""
    found = _ENHANCED.search(reply)
    if found is None:
        return "5.0.0"
    return f"5.{found.group(2)}.{found.group(3)}"
