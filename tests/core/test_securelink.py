"""The rules of a secure link: tokens, one-time codes, attempts, resends and a link's state."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.core.securelink import (
    CODE_DIGITS,
    CODE_LIFETIME,
    MAX_CODE_ATTEMPTS,
    MAX_CODES,
    RESEND_INTERVAL,
    CodeCheck,
    CodeFacts,
    LinkFacts,
    LinkState,
    Resend,
    check_code,
    code_digest,
    code_text,
    entered_code,
    link_state,
    looks_like_token,
    may_send_code,
    shown_code,
    token_digest,
    token_text,
)

PEPPER = b"p" * 32
NOW = 1_800_000_000.0


@given(st.binary(min_size=32, max_size=32))
def test_a_token_is_43_url_safe_characters_and_recognised(raw: bytes) -> None:
    token = token_text(raw)
    assert looks_like_token(token)
    assert token_digest(token) != token
    assert len(token_digest(token)) == 64


def test_two_tokens_from_fresh_randomness_differ_and_their_digests_too() -> None:
    a, b = token_text(os.urandom(32)), token_text(os.urandom(32))
    assert a != b
    assert token_digest(a) != token_digest(b)


@pytest.mark.parametrize(
    "text",
    ["", "short", "A" * 42, "A" * 44, "A" * 42 + "=", "A" * 42 + "/", "A" * 42 + "\u00e9"],
)
def test_what_is_not_a_token_is_refused_before_any_lookup(text: str) -> None:
    assert not looks_like_token(text)


def test_too_little_randomness_is_refused() -> None:
    with pytest.raises(ValueError, match="random bytes"):
        token_text(b"x" * 16)
    with pytest.raises(ValueError, match="random bytes"):
        code_text(b"x" * 4)


@given(st.binary(min_size=8, max_size=8))
def test_a_code_is_always_eight_digits(raw: bytes) -> None:
    code = code_text(raw)
    assert len(code) == CODE_DIGITS
    assert code.isdigit()


@pytest.mark.parametrize(
    ("typed", "code"),
    [
        ("12345678", "12345678"),
        ("1234 5678", "12345678"),
        (" 1234-5678 ", "12345678"),
        ("1234\u00a05678", "12345678"),
        ("1234567x", "1234567x"),  # kept, so the comparison refuses it
    ],
)
def test_what_a_person_types_becomes_the_code(typed: str, code: str) -> None:
    assert entered_code(typed) == code


def test_the_email_shows_the_code_in_two_groups() -> None:
    assert shown_code("12345678") == "1234 5678"


def test_a_code_digest_depends_on_the_link_and_the_key() -> None:
    digest = code_digest("12345678", "L1", PEPPER)
    assert digest == code_digest("12345678", "L1", PEPPER)
    assert digest != code_digest("12345678", "L2", PEPPER)
    assert digest != code_digest("12345678", "L1", b"q" * 32)
    assert digest != code_digest("12345679", "L1", PEPPER)


RIGHT = code_digest("12345678", "L1", PEPPER)
WRONG = code_digest("00000000", "L1", PEPPER)
SENT = CodeFacts(digest=RIGHT, expires_at=NOW + CODE_LIFETIME, sent=1, sent_at=NOW)


@pytest.mark.parametrize(
    ("code", "entered", "at", "check", "attempts"),
    [
        (SENT, RIGHT, NOW, CodeCheck.OK, 0),
        (SENT, WRONG, NOW, CodeCheck.WRONG, 1),
        (CodeFacts(RIGHT, NOW + CODE_LIFETIME, 3, 1, NOW), RIGHT, NOW, CodeCheck.OK, 3),
        (CodeFacts(RIGHT, NOW + CODE_LIFETIME, 3, 1, NOW), WRONG, NOW, CodeCheck.WRONG, 4),
        # The fifth wrong code is the last.
        (CodeFacts(RIGHT, NOW + CODE_LIFETIME, 4, 1, NOW), WRONG, NOW, CodeCheck.LOCKED, 5),
        # Right but late: not a guess, not counted; wrong and late: counted.
        (SENT, RIGHT, NOW + CODE_LIFETIME, CodeCheck.EXPIRED, 0),
        (SENT, WRONG, NOW + CODE_LIFETIME, CodeCheck.WRONG, 1),
        (CodeFacts(), RIGHT, NOW, CodeCheck.NONE_SENT, 0),
    ],
)
def test_entering_a_code(
    code: CodeFacts, entered: str, at: float, check: CodeCheck, attempts: int
) -> None:
    outcome = check_code(code, entered, at)
    assert (outcome.check, outcome.attempts) == (check, attempts)
    assert outcome.attempts_left == MAX_CODE_ATTEMPTS - attempts


@pytest.mark.parametrize(
    ("code", "at", "answer"),
    [
        (CodeFacts(), NOW, Resend.OK),
        (SENT, NOW + 1, Resend.TOO_SOON),
        (SENT, NOW + RESEND_INTERVAL, Resend.OK),
        (CodeFacts(RIGHT, NOW, 0, MAX_CODES, NOW - 3600), NOW, Resend.TOO_MANY),
    ],
)
def test_sending_another_code(code: CodeFacts, at: float, answer: Resend) -> None:
    assert may_send_code(code, at) is answer


@pytest.mark.parametrize(
    ("link", "at", "state"),
    [
        (LinkFacts(expires_at=NOW + 10), NOW, LinkState.ACTIVE),
        (LinkFacts(expires_at=NOW + 10), NOW + 10, LinkState.EXPIRED),
        (LinkFacts(expires_at=NOW + 10, revoked_at=NOW), NOW, LinkState.REVOKED),
        (LinkFacts(expires_at=NOW + 10, locked_at=NOW), NOW, LinkState.LOCKED),
        (LinkFacts(expires_at=NOW + 10, purged=True, revoked_at=NOW), NOW, LinkState.PURGED),
        (LinkFacts(expires_at=NOW - 10, revoked_at=NOW - 20), NOW, LinkState.REVOKED),
    ],
)
def test_the_state_of_a_link(link: LinkFacts, at: float, state: LinkState) -> None:
    assert link_state(link, at) is state
