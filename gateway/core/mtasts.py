"""MTA-STS (RFC 8461): the TXT record, the policy text and MX pattern matching. Pure functions.

Errors carry the reason code they stand for, so callers never translate them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from gateway.core.model import Reason, StsMode, StsPolicy, StsRecord

RECORD_PREFIX = "v=STSv1;"
# §3.1 says records that do not begin with "v=STSv1;" are discarded, but its ABNF puts an
# sts-field-delim (*WSP ";" *WSP) after the version, and real domains publish "v=STSv1 ; id=..".
# So a record begins with the version field and its delimiter, whitespace allowed before ';'.
_VERSION = re.compile(r"v=STSv1[ \t]*;")
MAX_AGE_CAP = 31_557_600  # §3.2: values above one year are capped
POLICY_MAX_BYTES = 64 * 1024  # §3.3

# §3.1 ABNF
_FIELD_DELIM = re.compile(r"[ \t]*;[ \t]*")
_ID = re.compile(r"[A-Za-z0-9]{1,32}\Z")
_EXT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}\Z")
_EXT_VALUE = re.compile(r"[\x21-\x3a\x3c\x3e-\x7e]+\Z")
# §3.2 ABNF
_POLICY_VALUE = re.compile(r"[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?\Z")
_EXT_POLICY_VALUE = re.compile(r"[^\x00-\x20\x7f]([^\x00-\x1f\x7f]*[^\x00-\x20\x7f])?\Z")
_MAX_AGE = re.compile(r"[0-9]{1,10}\Z")  # ASCII digits only; int() alone takes "+1", "1_0", "١"
_DOMAIN_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)\Z")


class StsError(ValueError):
    """A record or policy that RFC 8461 says to treat as absent. ``reason`` is the code."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def is_sts_record(text: str) -> bool:
    """True when a TXT record begins with the STSv1 version field and its delimiter (§3.1)."""
    return _VERSION.match(text) is not None


def select_record(txt_records: Iterable[str]) -> str:
    """§3.1: discard TXT records not starting with ``v=STSv1;`` (whitespace allowed before the
    ``;``); exactly one must remain.

    Each record's character-strings must already be joined with no separator.
    """
    candidates = [text for text in txt_records if is_sts_record(text)]
    if not candidates:
        raise StsError(Reason.STS_NO_RECORD, "no TXT record starts with v=STSv1;")
    if len(candidates) > 1:
        raise StsError(Reason.STS_MULTIPLE_RECORDS, f"{len(candidates)} v=STSv1 records")
    return candidates[0]


def parse_record(text: str) -> StsRecord:
    """Parse one ``_mta-sts`` TXT record (§3.1)."""

    def invalid(detail: str) -> StsError:
        return StsError(Reason.STS_RECORD_INVALID, detail)

    version = _VERSION.match(text)
    if version is None:
        raise invalid("record does not start with v=STSv1;")
    fields = _FIELD_DELIM.split(text[version.end() :].strip(" \t"))
    if fields and fields[-1] == "":
        fields.pop()  # the optional trailing delimiter
    record_id: str | None = None
    extensions: dict[str, str] = {}
    for item in fields:
        name, sep, value = item.partition("=")
        if not sep:
            raise invalid(f"field without '=': {item!r}")
        if name == "id" and record_id is None:
            if not _ID.match(value):
                raise invalid("id must be 1 to 32 letters or digits")
            record_id = value
            continue
        # Anything else, a repeated id or v= included, is an sts-extension; the first
        # occurrence of a name wins, the rest only has to be well-formed.
        if not _EXT_NAME.match(name) or not _EXT_VALUE.match(value):
            raise invalid(f"malformed field {item!r}")
        if name not in ("id", "v"):
            extensions.setdefault(name, value)
    if record_id is None:
        raise invalid("no id field")
    return StsRecord(id=record_id, extensions=extensions)


def split_policy_lines(text: str) -> list[str]:
    """§3.2: lines end in LF or CRLF, nothing else. ``str.splitlines`` would also split on
    VT, FF, NEL, U+2028 and friends, which would let a policy smuggle extra lines."""
    return [line.removesuffix("\r") for line in text.split("\n")]


def parse_policy(text: str) -> StsPolicy:
    """Parse the policy text (§3.2)."""

    def invalid(detail: str) -> StsError:
        return StsError(Reason.STS_POLICY_INVALID, detail)

    values: dict[str, str] = {}
    mx: list[str] = []
    extensions: dict[str, str] = {}
    for number, line in enumerate(split_policy_lines(text), start=1):
        if line.strip(" \t") == "":
            continue
        key, sep, rest = line.partition(":")
        if not sep:
            raise invalid(f"line {number}: no ':'")
        value = rest.strip(" \t")
        if not _EXT_NAME.match(key):
            raise invalid(f"line {number}: malformed key {key!r}")
        known = key in ("version", "mode", "max_age", "mx")
        # Known fields are ASCII; an extension's value may hold UTF-8 (§3.2 sts-policy-vchar).
        if not (_POLICY_VALUE if known else _EXT_POLICY_VALUE).match(value):
            raise invalid(f"line {number}: malformed value for {key}")
        if key == "mx":
            mx.append(_parse_mx_pattern(value, number))
        elif key in ("version", "mode", "max_age"):
            values.setdefault(key, value)  # a repeated key: the first wins
        else:
            extensions.setdefault(key, value)  # unknown keys are ignored, kept for display

    version = values.get("version")
    if version is None:
        raise invalid("no version field")
    if version != "STSv1":
        raise invalid(f"version must be STSv1, not {version!r}")
    mode_text = values.get("mode")
    if mode_text is None:
        raise invalid("no mode field")
    try:
        mode = StsMode(mode_text)  # case-sensitive: "Enforce" is not a mode
    except ValueError as exc:
        raise invalid(f"unknown mode {mode_text!r}") from exc
    max_age_text = values.get("max_age")
    if max_age_text is None:
        raise invalid("no max_age field")
    if not _MAX_AGE.match(max_age_text):
        raise invalid("max_age must be 1 to 10 ASCII digits")
    max_age = min(int(max_age_text), MAX_AGE_CAP)
    if mode is not StsMode.NONE and not mx:
        raise invalid(f"mode {mode} needs at least one mx pattern")
    return StsPolicy(mode=mode, max_age=max_age, mx=tuple(mx), extensions=extensions)


def _parse_mx_pattern(value: str, number: int) -> str:
    pattern = value.lower().removesuffix(".")
    name = pattern.removeprefix("*.")
    labels = name.split(".")
    # RFC 1123 §2.1: the top-level label of a host name is never all-numeric, so "1.2.3.4"
    # is an address, not a name an MX record could hold (RFC 5321 §5.1).
    if (
        len(labels) < 2
        or not all(_DOMAIN_LABEL.match(label) for label in labels)
        or labels[-1].isdigit()
    ):
        raise StsError(Reason.STS_POLICY_INVALID, f"line {number}: bad mx pattern {value!r}")
    return pattern


def mx_matches(pattern: str, host: str) -> bool:
    """§4.1: a literal equals the host; ``*.`` stands for exactly one left-most label."""
    pattern = pattern.lower().removesuffix(".")
    host = host.lower().removesuffix(".")
    if pattern.startswith("*."):
        label, dot, rest = host.partition(".")
        return bool(label) and bool(dot) and rest == pattern[2:]
    return host == pattern


def uncovered_hosts(policy: StsPolicy, hosts: Sequence[str]) -> tuple[str, ...]:
    """The MX hosts no pattern of the policy matches, in the order given."""
    return tuple(h for h in hosts if not any(mx_matches(p, h) for p in policy.mx))
