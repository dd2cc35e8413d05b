"""TLS-RPT (RFC 8460 §3): the ``_smtp._tls`` TXT record. A pure parser.

A domain that publishes a valid record shows that it watches its TLS failures; the gateway
reports the addresses and lets the operator require the record.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

RECORD_PREFIX = "v=TLSRPTv1;"

_FIELD_DELIM = re.compile(r"[ \t]*;[ \t]*")
_EXT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}\Z")
_EXT_VALUE = re.compile(r"[\x21-\x3a\x3c\x3e-\x7e]+\Z")
# §3: rua URIs are mailto: or https:; commas and semicolons inside them are %-encoded.
_URI = re.compile(r"(mailto:[^\s,;!]+|https://[^\s,;!]+)\Z", re.IGNORECASE)


class TlsRptError(ValueError):
    """A record RFC 8460 says to treat as absent. ``missing`` tells none from malformed."""

    def __init__(self, detail: str, *, missing: bool = False) -> None:
        super().__init__(detail)
        self.detail = detail
        self.missing = missing


def select_record(txt_records: Iterable[str]) -> str:
    """§3: records not starting with ``v=TLSRPTv1;`` are discarded; exactly one must remain."""
    candidates = [text for text in txt_records if text.startswith(RECORD_PREFIX)]
    if not candidates:
        raise TlsRptError("no TXT record starts with v=TLSRPTv1;", missing=True)
    if len(candidates) > 1:
        raise TlsRptError(f"{len(candidates)} v=TLSRPTv1 records")
    return candidates[0]


def parse_record(text: str) -> tuple[str, ...]:
    """Return the ``rua`` URIs of a TLS-RPT record, in order."""
    if not text.startswith(RECORD_PREFIX):
        raise TlsRptError("record does not start with v=TLSRPTv1;")
    fields = _FIELD_DELIM.split(text[len(RECORD_PREFIX) :].strip(" \t"))
    if fields and fields[-1] == "":
        fields.pop()
    rua: tuple[str, ...] | None = None
    for item in fields:
        name, sep, value = item.partition("=")
        if not sep:
            raise TlsRptError(f"field without '=': {item!r}")
        if name == "rua":
            uris = tuple(uri.strip(" \t") for uri in value.split(","))
            for uri in uris:
                if not _URI.match(uri):
                    raise TlsRptError(f"rua must list mailto: or https: URIs, not {uri!r}")
            if rua is None:
                rua = uris
        elif not _EXT_NAME.match(name) or not _EXT_VALUE.match(value):
            raise TlsRptError(f"malformed field {item!r}")
    if not rua:
        raise TlsRptError("no rua field")
    return rua
