"""How the gateway writes and reads moments: ISO 8601 in UTC, to the second, for exports and
the command line; day and time for people (notices, pages); days as YYYY-MM-DD."""

from __future__ import annotations

import datetime as dt
import email.utils
import functools
import math
from collections.abc import Callable


def iso_utc(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).isoformat(timespec="seconds")


def mail_date(timestamp: float) -> str:
    """RFC 5322 §3.3 date-time in GMT, to the second (``Wed, 02 Dec 2026 03:55:52 GMT``), as
    ``email.utils.formatdate(timestamp, usegmt=True)`` writes it: the Date: of every notice,
    the time of every Received: field, made once a second rather than once a message."""
    # The second as datetime.fromtimestamp has it: rounded to the microsecond first.
    fraction, whole = math.modf(timestamp)
    return _mail_date_of(int(whole) + (round(fraction * 1e6) >= 1_000_000))


@functools.lru_cache(maxsize=4)
def _mail_date_of(second: int) -> str:
    return email.utils.formatdate(second, usegmt=True)


def day_and_time(timestamp: float) -> str:
    """``01 Dec 2026 08:22 UTC``: for notices and pages."""
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%d %b %Y %H:%M UTC")


def or_dash(show: Callable[[float], str], timestamp: float | None) -> str:
    """``show(timestamp)``, or "-" when there is no moment to show."""
    return "-" if timestamp is None else show(timestamp)


def start_of_day(text: str) -> float:
    """The first moment (UTC) of the day written ``YYYY-MM-DD``; ValueError if it is not one."""
    day = dt.date.fromisoformat(text)
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()
