"""How the gateway writes and reads moments: ISO 8601 in UTC, to the second, for exports and
the command line; day and time for people (notices, pages); days as YYYY-MM-DD."""

from __future__ import annotations

import datetime as dt
import email.utils
import functools
from collections.abc import Callable


def iso_utc(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).isoformat(timespec="seconds")


def mail_date(timestamp: float) -> str:
    """RFC 5322 §3.3 date-time in GMT, to the second (``Wed, 02 Dec 2026 03:55:52 GMT``), as
    ``email.utils.formatdate(timestamp, usegmt=True)`` writes it: the Date: of every notice,
    the time of every Received: field, written once a second rather than once a message."""
    return _mail_date(dt.datetime.fromtimestamp(timestamp, dt.UTC).replace(microsecond=0))


@functools.lru_cache(maxsize=4)
def _mail_date(second: dt.datetime) -> str:
    return email.utils.format_datetime(second, usegmt=True)


def day_and_time(timestamp: float) -> str:
    """``01 Dec 2026 08:22 UTC``: for notices and pages (two for every hold), written once a
    minute."""
    moment = dt.datetime.fromtimestamp(timestamp, dt.UTC)
    return _day_and_time(moment.replace(second=0, microsecond=0))


@functools.lru_cache(maxsize=64)
def _day_and_time(minute: dt.datetime) -> str:
    return minute.strftime("%d %b %Y %H:%M UTC")


def or_dash(show: Callable[[float], str], timestamp: float | None) -> str:
    """``show(timestamp)``, or "-" when there is no moment to show."""
    return "-" if timestamp is None else show(timestamp)


def start_of_day(text: str) -> float:
    """The first moment (UTC) of the day written ``YYYY-MM-DD``; ValueError if it is not one."""
    day = dt.date.fromisoformat(text)
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()
