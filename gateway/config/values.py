"""The types settings are parsed into: seconds, host and port, choices, and secrets.

Each is parsed once, when the configuration is loaded; the rest of the gateway reads the
parsed value and never the text.
"""

from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

from gateway.core.model import Transport

# --- durations ---------------------------------------------------------------------------------


class _DurationText:
    """Marks a float setting that the file and the environment give as a duration ("4h")."""


Seconds = Annotated[float, _DurationText]
"""A duration, in seconds. Written with its unit: 90s, 30m, 4h, 7d, 2w."""

MINUTE, HOUR, DAY, WEEK = 60.0, 3600.0, 86400.0, 604800.0
_DURATION_UNITS = {"s": 1.0, "m": MINUTE, "h": HOUR, "d": DAY, "w": WEEK}


def parse_duration(text: str) -> float:
    """``"90s"``, ``"30m"``, ``"4h"``, ``"7d"``, ``"2w"``, ``"1.5h"`` -> seconds.

    A bare number is refused: whether "4" meant hours or days is the mistake the unit is
    there to prevent."""
    number, unit = text[:-1].strip(), text[-1:].lower()
    if unit not in _DURATION_UNITS or not number.replace(".", "", 1).isdigit():
        raise ValueError(f"{text!r} is not a duration such as 30m, 4h or 7d")
    return float(number) * _DURATION_UNITS[unit]


def describe_duration(seconds: float) -> str:
    """Seconds as people read them in notices and pages: the largest whole unit among
    d, h, m and s ("7d", "4h", "90m", "1.5s")."""
    for unit, size in (("d", DAY), ("h", HOUR), ("m", MINUTE)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


# --- addresses ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class HostPort:
    """An IP address and a port, as in ``listen`` and ``nameservers``."""

    host: str
    port: int

    @classmethod
    def parse(cls, text: str, default_port: int) -> HostPort:
        """``"192.0.2.1"``, ``"192.0.2.1:5353"``, ``"::1"`` or ``"[::1]:5353"``: a bare IPv6
        address takes no port, so one with a port is written in brackets (RFC 3986 §3.2.2)."""
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
            return cls(host, default_port)
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError("bad port")
        return cls(host, int(port_text))

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


# --- secrets -----------------------------------------------------------------------------------


class Secret:
    """A password, key or token. ``repr`` and ``str`` say whether it is set, never what it is,
    so no log line or traceback can show it; ``reveal()`` gives the value to the one place that
    uses it."""

    __slots__ = ("_value",)

    def __init__(self, value: str = "") -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, len(self._value)))

    def __str__(self) -> str:
        return "********" if self._value else ""

    def __repr__(self) -> str:
        return "Secret('********')" if self._value else "Secret('')"


# --- choices -----------------------------------------------------------------------------------


class RelayTls(StrEnum):
    """How the connection to the upstream is protected."""

    NONE = "none"
    STARTTLS = "starttls"  # RFC 3207: upgrade after EHLO
    IMPLICIT = "implicit"  # RFC 8314 §3.3: TLS from the first byte


class Scope(StrEnum):
    """Which messages the policy checks."""

    FLAGGED = "flagged"
    ALL = "all"


class OnDnsError(StrEnum):
    """What a temporary failure to settle a recipient's posture does."""

    HOLD = "hold"
    TEMPFAIL = "tempfail"


class MinimumTransport(StrEnum):
    """The least a recipient domain's transport must prove for flagged mail to leave."""

    MTA_STS_TESTING = "mta-sts-testing"
    MTA_STS_ENFORCE = "mta-sts-enforce"
    DANE = "dane"

    @property
    def transport(self) -> Transport:
        return Transport.from_label(self.value)


class DirectDelivery(StrEnum):
    """Which messages the gateway delivers to the recipients' MX hosts itself."""

    NONE = "none"  # everything through [relay]
    FLAGGED = "flagged"  # flagged mail direct, with the TLS its verdict relied on
    ALL = "all"  # all mail direct; unflagged mail as a good MTA sends it


class StoreBackend(StrEnum):
    """Where the gateway keeps its state."""

    SQLITE = "sqlite"  # the embedded default: files in [store] data_dir, one node
    POSTGRESQL = "postgresql"  # one database shared by several nodes


class RequireTlsMode(StrEnum):
    """RFC 8689 REQUIRETLS towards the smarthost, for flagged mail."""

    OFF = "off"
    WHEN_OFFERED = "when-offered"
    REQUIRE = "require"


class LogLevel(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class LogFormat(StrEnum):
    JSON = "json"
    CONSOLE = "console"


__all__ = [
    "DAY",
    "HOUR",
    "MINUTE",
    "WEEK",
    "DirectDelivery",
    "HostPort",
    "LogFormat",
    "LogLevel",
    "MinimumTransport",
    "OnDnsError",
    "RelayTls",
    "RequireTlsMode",
    "Scope",
    "Seconds",
    "Secret",
    "StoreBackend",
    "describe_duration",
    "parse_duration",
]
