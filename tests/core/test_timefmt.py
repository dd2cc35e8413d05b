"""How moments are written: the Date: of notices and the time of Received: fields."""

from __future__ import annotations

import datetime as dt
import email.utils

from hypothesis import given
from hypothesis import strategies as st

from gateway.core.timefmt import day_and_time, mail_date


@given(st.floats(min_value=-2_208_988_800, max_value=4_102_444_800))  # 1900 to 2100
def test_a_mail_date_reads_as_the_email_packages_own(timestamp: float) -> None:
    assert mail_date(timestamp) == email.utils.formatdate(timestamp, usegmt=True)


@given(st.floats(min_value=-2_208_988_800, max_value=4_102_444_800))
def test_a_day_and_time_reads_as_strftime_writes_it(timestamp: float) -> None:
    moment = dt.datetime.fromtimestamp(timestamp, dt.UTC)
    assert day_and_time(timestamp) == moment.strftime("%d %b %Y %H:%M UTC")


def test_a_mail_date_moves_with_the_second_and_reads_back() -> None:
    first, same, next_second = (
        mail_date(1796183737.01),
        mail_date(1796183737.99),
        mail_date(1796183738.0),
    )
    assert first == same == "Wed, 02 Dec 2026 03:55:37 GMT"
    assert next_second == "Wed, 02 Dec 2026 03:55:38 GMT"
    assert email.utils.parsedate_to_datetime(next_second).timestamp() == 1796183738.0
