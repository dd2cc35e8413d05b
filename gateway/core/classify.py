"""Is this message safeguarding mail? Rules over the headers (and optionally the text body).

What a rule found is kept apart from what to do about it: classification returns findings, and
the policy decides. A finding never carries the subject or the body, only the marker that
matched, so findings are safe to log.

Fail closed: a header block that cannot be read, or a subject that cannot be decoded, flags
the message, since a marker could hide in what could not be read.
"""

from __future__ import annotations

import email.parser
import email.policy
import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from email.message import Message

from gateway.core.headers import HeaderDecodeError, Headers, decode_words

SENSITIVITY_HEADER = "msip_labels"
# Microsoft Purview writes one "MSIP_Label_<guid>_Enabled=true" field per applied label.
_LABEL = re.compile(r"MSIP_Label_([0-9A-Fa-f-]{36})_Enabled\s*=\s*true", re.IGNORECASE)
_PAIRS = {"[": "]", "(": ")", "{": "}"}


@dataclass(frozen=True)
class Rules:
    header: str = "X-Safeguarding"
    header_values: frozenset[str] = frozenset({"yes", "true", "1"})
    subject_markers: tuple[str, ...] = ("SAFEGUARDING", "OFFICIAL-SENSITIVE", "SECURE", "ENCRYPT")
    sensitivity_labels: frozenset[str] = frozenset()
    body_keywords: tuple[str, ...] = ()

    @classmethod
    def build(
        cls,
        header: str,
        header_values: Iterable[str],
        subject_markers: Iterable[str],
        sensitivity_labels: Iterable[str],
        body_keywords: Iterable[str],
    ) -> Rules:
        return cls(
            header,
            frozenset(v.strip().lower() for v in header_values),
            tuple(subject_markers),
            frozenset(label.strip().lower() for label in sensitivity_labels),
            tuple(k for k in body_keywords if k.strip()),
        )

    @functools.cached_property
    def subject_pattern(self) -> re.Pattern[str]:
        """``marker_pattern`` of the markers, made once for the rules, not once a message."""
        return marker_pattern(self.subject_markers)


@dataclass(frozen=True)
class Finding:
    rule: str  # header, subject-marker, sensitivity-label, body-keyword, malformed-...
    detail: str  # what matched: a header name and value, a marker, a label id; never content

    def __str__(self) -> str:
        return f"{self.rule}: {self.detail}"


def classify_headers(headers: Headers, rules: Rules) -> tuple[Finding, ...]:
    findings: list[Finding] = []
    if headers.malformed:
        findings.append(Finding("malformed-header", "a header line could not be read"))
    for value in headers.get_all(rules.header):
        if value.strip().lower() in rules.header_values:
            findings.append(Finding("header", f"{rules.header}: {value.strip()}"))
    if rules.subject_markers:
        findings.extend(_subject_findings(headers.get_all("Subject"), rules.subject_pattern))
    for value in headers.get_all(SENSITIVITY_HEADER):
        for label in _LABEL.findall(value):
            if label.lower() in rules.sensitivity_labels:
                findings.append(Finding("sensitivity-label", label.lower()))
    return tuple(findings)


def _subject_findings(subjects: Sequence[str], pattern: re.Pattern[str]) -> list[Finding]:
    findings = []
    for raw in subjects:
        try:
            subject = decode_words(raw)
        except HeaderDecodeError:
            findings.append(Finding("malformed-subject", "the subject could not be decoded"))
            continue
        for match in pattern.finditer(subject):
            opening, marker, closing = match.group(1), match.group(2), match.group(3)
            if _PAIRS[opening] == closing:
                findings.append(Finding("subject-marker", f"{opening}{marker.upper()}{closing}"))
    return findings


def marker_pattern(markers: Sequence[str]) -> re.Pattern[str]:
    """``[SECURE]``, ``(secure)``, ``{ Secure }``: a marker in matching brackets, any case.
    Made once per ``Rules`` (``Rules.subject_pattern``), not once a message."""
    names = "|".join(re.escape(m) for m in sorted(markers, key=len, reverse=True))
    return re.compile(rf"([\[({{])\s*({names})\s*([\])}}])", re.IGNORECASE)


def scan_body(message: bytes, keywords: Sequence[str], limit: int) -> tuple[Finding, ...]:
    """Look for keywords in the text parts of the first ``limit`` bytes. CPU-bound: the
    caller runs it off the event loop and bounds its time."""
    if not keywords:
        return ()
    if plainly_absent(message[:limit], keywords):
        return ()
    return scan_parsed(message[:limit], keywords)


def scan_parsed(message: bytes, keywords: Sequence[str]) -> tuple[Finding, ...]:
    """The keyword search over the decoded text parts, without the raw-bytes shortcut."""
    parsed = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(message)
    wanted = [(k, k.casefold()) for k in keywords]
    found: dict[str, Finding] = {}
    for part in _text_parts(parsed):
        text = part.casefold()
        for keyword, folded in wanted:
            if keyword not in found and folded in text:
                found[keyword] = Finding("body-keyword", keyword)
    return tuple(found.values())


# Where a keyword could hide from a search of the raw bytes: encoded parts, other charsets.
# Searched in the lowered bytes, so without IGNORECASE (five times faster on a 5 KB message):
# both fold ASCII only, and lowering changes neither ``\s`` nor ``\b``.
_ENCODED = re.compile(
    rb"content-transfer-encoding:\s*[\"']?(base64|quoted-printable)"
    rb"|charset\s*=\s*(?![\"']?(utf-?8|us-ascii)\b)"
)


def plainly_absent(message: bytes, keywords: Sequence[str]) -> bool:
    """True when no keyword can be in the text: the raw bytes hold none of them and nothing
    is encoded. Most mail is like that, and it spares a MIME parse per message."""
    if not all(k.isascii() for k in keywords):
        return False  # bytes.lower() folds ASCII only
    lowered = message.lower()
    if _ENCODED.search(lowered):
        return False
    return not any(k.casefold().encode("utf-8") in lowered for k in keywords)


def _text_parts(message: Message) -> list[str]:
    texts = []
    for part in message.walk():
        if part.get_content_maintype() != "text" or part.is_multipart():
            continue
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            charset = part.get_content_charset() or "utf-8"
            try:
                texts.append(payload.decode(charset, "replace"))
            except LookupError:
                texts.append(payload.decode("utf-8", "replace"))
    return texts
