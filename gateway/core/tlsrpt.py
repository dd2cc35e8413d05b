"""TLS-RPT (RFC 8460 §3): the ``_smtp._tls`` TXT record. A pure parser.

A domain that publishes a valid record shows that it watches its TLS failures; the gateway
reports the addresses and lets the operator require the record.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

RECORD_PREFIX = "v=TLSRPTv1;"
# §3: "records that do not begin with v=TLSRPTv1; are discarded", yet the ABNF puts a
# field-delim (*WSP ";" *WSP) after tlsrpt-version, and real domains publish "v=TLSRPTv1 ;".
# So a record begins with the version field and its delimiter, whitespace allowed before ';'.
_VERSION = re.compile(r"v=TLSRPTv1[ \t]*;")

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


def is_tlsrpt_record(text: str) -> bool:
    """True when a TXT record begins with the TLSRPTv1 version field and its delimiter (§3)."""
    return _VERSION.match(text) is not None


def select_record(txt_records: Iterable[str]) -> str:
    """§3: records not starting with ``v=TLSRPTv1;`` (whitespace allowed before the ``;``) are
    discarded; exactly one must remain."""
    candidates = [text for text in txt_records if is_tlsrpt_record(text)]
    if not candidates:
        raise TlsRptError("no TXT record starts with v=TLSRPTv1;", missing=True)
    if len(candidates) > 1:
        raise TlsRptError(f"{len(candidates)} v=TLSRPTv1 records")
    return candidates[0]


def parse_record(text: str) -> tuple[str, ...]:
    """Return the ``rua`` URIs of a TLS-RPT record, in order.

    §3: ``tlsrpt-record = tlsrpt-version 1*(field-delim tlsrpt-field)`` with ``tlsrpt-field =
    tlsrpt-rua / tlsrpt-extension``, so a second ``rua`` field is grammatical, and "the record
    supports the ability to declare more than one rua [...] the reporter MAY attempt to deliver
    to each": every ``rua`` field's URIs count, in the order written.
    """
    version = _VERSION.match(text)
    if version is None:
        raise TlsRptError("record does not start with v=TLSRPTv1;")
    fields = _FIELD_DELIM.split(text[version.end() :].strip(" \t"))
    if fields and fields[-1] == "":
        fields.pop()
    rua: list[str] = []
    for item in fields:
        name, sep, value = item.partition("=")
        if not sep:
            raise TlsRptError(f"field without '=': {item!r}")
        if name == "rua":
            uris = tuple(uri.strip(" \t") for uri in value.split(","))
            for uri in uris:
                if not _URI.match(uri):
                    raise TlsRptError(f"rua must list mailto: or https: URIs, not {uri!r}")
            rua.extend(uris)
        elif not _EXT_NAME.match(name) or not _EXT_VALUE.match(value):
            raise TlsRptError(f"malformed field {item!r}")
    if not rua:
        raise TlsRptError("no rua field")
    return tuple(rua)
