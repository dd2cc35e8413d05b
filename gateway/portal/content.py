"""The held message as the recipient sees it on the portal: its subject, sender and date, the
body as text or as sanitised HTML, and its attachments.

HTML is cleaned with ``nh3`` (the Ammonia sanitiser) down to a small set of formatting tags:
no script, style, form, frame or media element survives, no event handler or ``style``
attribute, no image (every ``<img>`` would be a remote load or a tracking pixel), and links
keep only http, https and mailto targets, opened without a referrer. The result is shown inline
under the page's own CSP (no script source at all, images from the portal only), so even markup
the sanitiser let through could neither run nor load anything. Inline rather than in an
``<iframe sandbox srcdoc>``: it needs no frame-src or inline styles in the CSP, reads and zooms
like the rest of the page on a phone, and leaves one policy to reason about.
"""

from __future__ import annotations

import email.parser
import email.policy
from dataclasses import dataclass
from email.message import Message

import nh3

from gateway.review import messageview
from gateway.review.messageview import Attachment

MAX_HTML = 500_000  # characters of HTML sanitised; a longer body is shown as text

TAGS = frozenset(
    {
        "a", "abbr", "b", "blockquote", "br", "caption", "code", "dd", "del", "div", "dl",
        "dt", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "ins", "li", "ol", "p",
        "pre", "q", "s", "small", "span", "strong", "sub", "sup", "table", "tbody", "td",
        "tfoot", "th", "thead", "tr", "u", "ul",
    }
)  # fmt: skip
ATTRIBUTES = {
    "a": {"href", "title"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan", "scope"},
    "abbr": {"title"},
}
# Elements dropped with everything inside them (their text is code or styling, not content).
DROPPED = frozenset({"script", "style", "title", "head", "noscript", "template", "svg", "math"})


@dataclass(frozen=True)
class Shown:
    """What the view page shows."""

    subject: str
    sender: str  # the From header, as text
    date: str
    text: str  # the body as text: shown when there is no HTML
    html: str  # sanitised markup, or "" when the message has no HTML body
    attachments: tuple[Attachment, ...]
    truncated: bool


def clean_html(markup: str) -> str:
    """Markup safe to put in a page: formatting only, nothing that runs or loads."""
    return nh3.clean(
        markup[:MAX_HTML],
        tags=set(TAGS),
        clean_content_tags=set(DROPPED),
        attributes={tag: set(names) for tag, names in ATTRIBUTES.items()},
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )


def shown(raw: bytes) -> Shown:
    view = messageview.view(raw)
    headers = dict((name.lower(), value) for name, value in view.headers)
    markup = html_body(raw)
    return Shown(
        subject=view.subject,
        sender=headers.get("from", ""),
        date=headers.get("date", ""),
        text=view.text,
        html=clean_html(markup) if markup else "",
        attachments=view.attachments,
        truncated=view.truncated,
    )


def html_body(raw: bytes) -> str:
    """The message's first inline text/html part, decoded; "" when it has none."""
    message = email.parser.BytesParser(policy=email.policy.default).parsebytes(raw)
    for part in message.walk():
        if part.is_multipart() or part.get_content_type() != "text/html":
            continue
        if part.get_content_disposition() == "attachment" or part.get_filename():
            continue
        return _decoded(part)
    return ""


def _decoded(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, "replace")
    except LookupError:
        return payload.decode("utf-8", "replace")
