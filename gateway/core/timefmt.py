"""How the gateway writes a moment for people and for exports: ISO 8601 in UTC, to the second."""

from __future__ import annotations

import datetime as dt


def iso_utc(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).isoformat(timespec="seconds")
