"""How an upstream's refusal is handed back: its enhanced status code (RFC 3463) passed on
when it has one of the reply's class, else the generic x.0.0; a temporary answer is 451."""

from __future__ import annotations

import pytest

from gateway.delivery.transport import Reply
from gateway.filter.replies import TEMPFAIL_UPSTREAM, upstream_reply

CASES = [
    (
        550,
        "5.7.30 REQUIRETLS support required",
        "550 5.7.30 Upstream refused: REQUIRETLS support required",
    ),
    (550, "5.1.1 No such user", "550 5.1.1 Upstream refused: No such user"),
    (554, "5.6.0", "554 5.6.0 Upstream refused:"),
    (553, "  5.1.3 leading spaces", "553 5.1.3 Upstream refused: leading spaces"),
    (550, "4.7.1 wrong class", "550 5.0.0 Upstream refused: 4.7.1 wrong class"),
    (550, "No such user", "550 5.0.0 Upstream refused: No such user"),
    (550, "5.7 too short", "550 5.0.0 Upstream refused: 5.7 too short"),
    (550, "5.01.1 leading zero", "550 5.0.0 Upstream refused: 5.01.1 leading zero"),
    (550, "5.1.1234 too long", "550 5.0.0 Upstream refused: 5.1.1234 too long"),
    (550, "5.1.1x glued", "550 5.0.0 Upstream refused: 5.1.1x glued"),
    (550, "", "550 5.0.0 Upstream refused: "),
]


@pytest.mark.parametrize(("code", "text", "expected"), CASES, ids=[c[1] or "empty" for c in CASES])
def test_a_refusal_keeps_the_upstreams_enhanced_code_when_it_has_one(
    code: int, text: str, expected: str
) -> None:
    assert str(upstream_reply(Reply(code, text))) == expected


@pytest.mark.parametrize("code", [421, 450, 451, 452])
def test_a_temporary_answer_is_upstream_unavailable(code: int) -> None:
    assert upstream_reply(Reply(code, f"4.3.0 busy {code}")) == TEMPFAIL_UPSTREAM
