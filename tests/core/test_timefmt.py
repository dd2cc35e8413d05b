"""How moments are written: the Date: of notices and the time of Received: fields."""

from __future__ import annotations

import email.utils

from hypothesis import given
from hypothesis import strategies as st

from gateway.core.timefmt import mail_date


@given(st.floats(min_value=0, max_value=4_102_444_800))  # to 2100
def test_a_mail_date_reads_as_the_email_packages_own(timestamp: float) -> None:
    assert mail_date(timestamp) == email.utils.formatdate(timestamp, usegmt=True)


def test_a_mail_date_moves_with_the_second_and_reads_back() -> None:
    first, same, next_second = (
        mail_date(1796183737.01),
        mail_date(1796183737.99),
        mail_date(1796183738.0),
    )
    assert first == same == "Wed, 02 Dec 2026 03:55:37 GMT"
    assert next_second == "Wed, 02 Dec 2026 03:55:38 GMT"
    assert email.utils.parsedate_to_datetime(next_second).timestamp() == 1796183738.0
