"""The checks that reject an impossible configuration value, and the parsers for values that
other modules read too (addresses, durations, keys). Each check returns what is wrong, or
None."""

from __future__ import annotations

import base64
import binascii
import ipaddress
from collections.abc import Callable
from typing import Any

Check = Callable[[Any], str | None]


def positive(value: Any) -> str | None:
    return None if value > 0 else "must be greater than zero"


def non_negative(value: Any) -> str | None:
    return None if value >= 0 else "must not be negative"


def port(value: Any) -> str | None:
    return None if 0 < value < 65536 else "must be a port number from 1 to 65535"


def one_of(*choices: str) -> Check:
    def check(value: Any) -> str | None:
        return None if value in choices else "must be one of " + ", ".join(choices)

    return check


def nameserver_list(value: Any) -> str | None:
    for item in value:
        try:
            parse_hostport(item, 53)
        except ValueError as exc:
            return f"{item!r}: {exc}"
    return None


def parse_hostport(text: str, default_port: int) -> tuple[str, int]:
    """``"192.0.2.1"``, ``"192.0.2.1:5353"``, ``"::1"`` or ``"[::1]:5353"`` -> (ip, port)."""
    host, port_text = text, None
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ValueError("expected [address]:port")
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    try:
        ipaddress.ip_address(host)
    except ValueError as exc:
        raise ValueError("not an IP address") from exc
    if port_text is None:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError("bad port")
    return host, int(port_text)


def network_list(value: Any) -> str | None:
    for item in value:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            return f"{item!r} is not a network (e.g. 192.0.2.0/24)"
    return None


def listen_address(value: Any) -> str | None:
    try:
        parse_hostport(value, 0)
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


def store_key(value: Any) -> str | None:
    if value and decode_key(value) is None:
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


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """``"90s"``, ``"30m"``, ``"4h"``, ``"7d"``, ``"2w"`` -> seconds."""
    number, unit = text[:-1].strip(), text[-1:].lower()
    if unit not in _DURATION_UNITS or not number.replace(".", "", 1).isdigit():
        raise ValueError(text)
    return float(number) * _DURATION_UNITS[unit]


def duration(value: Any) -> str | None:
    try:
        seconds = parse_duration(value)
    except ValueError:
        return "must be a duration such as 30m, 4h or 7d"
    return None if seconds > 0 else "must be longer than zero"


def address_list(value: Any) -> str | None:
    for item in value:
        local, at, domain = item.rpartition("@")
        if not at or not local or not domain:
            return f"{item!r} is not a mail address"
    return None


def optional_address(value: Any) -> str | None:
    return address_list([value]) if value else None


def web_secret(value: Any) -> str | None:
    if value and len(value) < 32:
        return "must be at least 32 characters (e.g. 64 hex digits from `openssl rand -hex 32`)"
    return None
