"""The checks that reject an impossible configuration value, run on the parsed value. Each
returns what is wrong, or None. Also the store key's decoding, which the store uses too."""

from __future__ import annotations

import base64
import binascii
import ipaddress
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from gateway.config.values import Secret
from gateway.core.model import Reason

Check = Callable[[Any], str | None]


def positive(value: Any) -> str | None:
    return None if value > 0 else "must be greater than zero"


def longer_than_zero(seconds: Any) -> str | None:
    return None if seconds > 0 else "must be longer than zero"


def under_data_initiation(seconds: Any) -> str | None:
    """A wait before the 354 that the client outlasts: RFC 5321 §4.5.3.2.5 lets it give up
    on the reply to DATA after 2 minutes, so a longer wait would end in a dropped connection
    instead of the 451 that tells it to try later."""
    if not seconds > 0:
        return "must be longer than zero"
    return None if seconds < 120 else "must be shorter than 120 seconds (RFC 5321 §4.5.3.2.5)"


def non_negative(value: Any) -> str | None:
    return None if value >= 0 else "must not be negative"


def port(value: Any) -> str | None:
    return None if 0 < value < 65536 else "must be a port number from 1 to 65535"


def network_list(value: Any) -> str | None:
    for item in value:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            return f"{item!r} is not a network (e.g. 192.0.2.0/24)"
    return None


def optional_listen(value: Any) -> str | None:
    """An "ip:port" to listen on, or empty for none."""
    from gateway.config.values import HostPort

    if not value:
        return None
    try:
        HostPort.parse(value, 0)
    except ValueError as exc:
        return str(exc)
    return None


def domain_list(value: Any) -> str | None:
    from gateway.core.addresses import AddressError, normalise_domain

    for item in value:
        try:
            normalise_domain(item)
        except AddressError as exc:
            return f"{item!r}: {exc}"
    return None


def store_key(value: Secret) -> str | None:
    if value and decode_key(value.reveal()) is None:
        return "must be 32 bytes as 64 hex digits or base64"
    return None


def decode_key(text: str) -> bytes | None:
    """An AES-256 key written as 64 hex digits or standard base64."""
    text = text.strip()
    try:
        key = bytes.fromhex(text) if len(text) == 64 else base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        return None
    return key if len(key) == 32 else None


def address_list(value: Any) -> str | None:
    for item in value:
        local, at, domain = item.rpartition("@")
        if not at or not local or not domain:
            return f"{item!r} is not a mail address"
    return None


def optional_address(value: Any) -> str | None:
    return address_list([value]) if value else None


def web_url(value: Any) -> str | None:
    """An address the reviewers' browsers reach the web UI at: http(s), a host, no query."""
    if not value:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.query or parts.fragment:
        return "must be an http or https address such as https://gateway.example.org"
    return None


def portal_url(value: Any) -> str | None:
    """Where recipients open their links: https, since a link is a bearer credential until its
    code is entered (plain http only on loopback, for trying the portal out)."""
    if not value:
        return None
    parts = urlsplit(value)
    loopback = parts.hostname in ("localhost", "127.0.0.1", "::1")
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        return "must be an https address such as https://secure.example.org"
    if not parts.hostname or parts.query or parts.fragment:
        return "must be an https address such as https://secure.example.org"
    return None


def reason_list(value: Any) -> str | None:
    """Reason codes, as `gateway check` and the README name them."""
    known = {str(reason) for reason in Reason}
    unknown = [code for code in value if code not in known]
    if unknown:
        return f"unknown reason code(s): {', '.join(unknown)} (see the README's reason codes)"
    return None


def web_secret(value: Secret) -> str | None:
    if value and len(value.reveal()) < 32:
        return "must be at least 32 characters (e.g. 64 hex digits from `openssl rand -hex 32`)"
    return None
