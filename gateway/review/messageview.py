"""A held message as a reviewer sees it: envelope, headers, the text body, attachment names and
sizes. HTML is never rendered or executed: an HTML-only body is shown as its text.
"""

from __future__ import annotations

import email.parser
import email.policy
import html.parser
from dataclasses import dataclass, field
from email.message import EmailMessage, Message

MAX_TEXT = 200_000  # characters of body text shown; the rest is cut, with a note


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    size: int
    index: int  # position among the message's parts, to fetch its bytes again


@dataclass(frozen=True)
class MessageView:
    headers: tuple[tuple[str, str], ...]
    subject: str
    text: str
    text_source: str  # "text/plain", "text/html (as text)" or "none"
    attachments: tuple[Attachment, ...] = field(default_factory=tuple)
    truncated: bool = False


def view(raw: bytes) -> MessageView:
    message = email.parser.BytesParser(policy=email.policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    headers = tuple((name, _header_text(value)) for name, value in message.items())
    text, source = _body_text(message)
    truncated = len(text) > MAX_TEXT
    return MessageView(
        headers=headers,
        subject=_header_text(message.get("Subject", "")),
        text=text[:MAX_TEXT],
        text_source=source,
        attachments=tuple(attachments(message)),
        truncated=truncated,
    )


def _header_text(value: object) -> str:
    try:
        return str(value)
    except Exception:  # a header the parser could not decode is shown as it came
        return repr(value)


def _body_text(message: EmailMessage) -> tuple[str, str]:
    plain = _first_part(message, "plain")
    if plain is not None:
        return _decoded(plain), "text/plain"
    rich = _first_part(message, "html")
    if rich is not None:
        return html_to_text(_decoded(rich)), "text/html (as text)"
    return "", "none"


def _first_part(message: EmailMessage, subtype: str) -> Message | None:
    for part in message.walk():
        if part.is_multipart() or part.get_content_maintype() != "text":
            continue
        if part.get_content_subtype() == subtype and not _is_attachment(part):
            return part
    return None


def _decoded(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        text = payload.decode(charset, "replace")
    except LookupError:
        text = payload.decode("utf-8", "replace")
    return text.replace("\r\n", "\n")


def _is_attachment(part: Message) -> bool:
    return part.get_content_disposition() == "attachment" or part.get_filename() is not None


def attachments(message: Message) -> list[Attachment]:
    found = []
    for index, part in enumerate(message.walk()):
        if part.is_multipart() or not _is_attachment(part):
            continue
        payload = part.get_payload(decode=True)
        size = len(payload) if isinstance(payload, bytes) else 0
        found.append(
            Attachment(part.get_filename() or "(unnamed)", part.get_content_type(), size, index)
        )
    return found


def attachment_bytes(raw: bytes, index: int) -> tuple[Attachment, bytes] | None:
    message = email.parser.BytesParser(policy=email.policy.default).parsebytes(raw)
    for number, part in enumerate(message.walk()):
        if number == index and not part.is_multipart() and _is_attachment(part):
            payload = part.get_payload(decode=True)
            data = payload if isinstance(payload, bytes) else b""
            info = Attachment(
                part.get_filename() or "(unnamed)", part.get_content_type(), len(data), index
            )
            return info, data
    return None


class _TextExtractor(html.parser.HTMLParser):
    _SKIP = frozenset({"script", "style", "head", "title"})
    _BREAK = frozenset({"br", "p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skipping += 1
        elif tag in self._BREAK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP and self._skipping:
            self._skipping -= 1

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def html_to_text(markup: str) -> str:
    """The words of an HTML body, with no markup, script or style left in it."""
    extractor = _TextExtractor()
    extractor.feed(markup)
    extractor.close()
    lines = [" ".join(line.split()) for line in "".join(extractor.parts).split("\n")]
    return "\n".join(line for line in lines if line)
