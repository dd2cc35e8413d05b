"""Held messages for the web tests: ordinary ones, and one whose every field is a script."""

from __future__ import annotations

import email.message
import email.policy
import email.utils
import itertools
from collections.abc import Sequence

_counter = itertools.count(1)

# Every place a sender controls, carrying markup that would run if a page ever rendered it.
SCRIPT_SUBJECT = "<script>window.__xss='subject';alert('subject')</script> [SECURE] welfare"
SCRIPT_BODY = (
    "Notes.\n<script>window.__xss='body';alert('body')</script>\n"
    "<img src=x onerror=\"window.__xss='img';alert('img')\">\n"
    '</pre><iframe src="https://attacker.invalid/"></iframe>\n'
)
SCRIPT_HTML = (
    "<html><body><p>Rich text</p><script>window.__xss='html'</script>"
    '<img src="https://tracker.invalid/pixel.gif" onerror="window.__xss=\'pixel\'"></body></html>'
)
SCRIPT_FILENAME = '"><img src=x onerror="window.__xss=\'file\'">\u202egpj.exe'
SCRIPT_ATTACHMENT = b"<script>window.__xss='attachment'</script>"


def message(
    *,
    sender: str = "head@school.test",
    to: Sequence[str] = ("officer@nosts.test",),
    subject: str = "[SECURE] Referral for J",
    body: str = "Notes from today's meeting about J.\n",
    html: str | None = None,
    attachments: Sequence[tuple[str, str, bytes]] = (),
) -> bytes:
    """A flagged message (X-Safeguarding: yes) with CRLF line endings; attachments are
    (filename, content type, bytes)."""
    msg = email.message.EmailMessage(policy=email.policy.SMTP)
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Subject"] = subject
    msg["Date"] = email.utils.formatdate(usegmt=True)
    msg["Message-ID"] = f"<web-{next(_counter)}-{email.utils.make_msgid().strip('<>')}>"
    msg["X-Safeguarding"] = "yes"
    msg.set_content(body)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    for filename, content_type, data in attachments:
        maintype, subtype = content_type.split("/", 1)
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg.as_bytes()


def script_message(to: Sequence[str] = ("officer@nosts.test",)) -> bytes:
    return message(
        to=to,
        subject=SCRIPT_SUBJECT,
        body=SCRIPT_BODY,
        html=SCRIPT_HTML,
        attachments=[(SCRIPT_FILENAME, "text/html", SCRIPT_ATTACHMENT)],
    )


def html_only_message(to: Sequence[str] = ("officer@nosts.test",)) -> bytes:
    msg = email.message.EmailMessage(policy=email.policy.SMTP)
    msg["From"] = "head@school.test"
    msg["To"] = ", ".join(to)
    msg["Subject"] = "[SECURE] html only"
    msg["Message-ID"] = f"<web-{next(_counter)}@school.test>"
    msg.set_content(SCRIPT_HTML, subtype="html")
    return msg.as_bytes()
