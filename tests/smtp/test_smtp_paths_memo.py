"""The remembered outcome of an envelope address is the outcome of a fresh parse.

``paths.refusal`` keeps the most recent answers; for every hostile path of the address table
(and the bidi and zero-width ones) the answer from the memo, asked twice, is the one a fresh
parse gives, for senders and recipients, with and without SMTPUTF8."""

from __future__ import annotations

import pytest

from gateway.smtp import paths
from support.smtpface import Face
from tests.smtp.test_smtp_addresses import CASES, mail, rcpt

BIDI = [f"<pupil{c}gpj.exe@school.test>" for c in ("\u202e", "\u2066", "\u200b", "\u200f")]
PATHS = [path for path, _, _ in CASES] + BIDI + ["<jürgen@bücher.test>", "<Head@School.Test>"]


def mailbox(path: str) -> str:
    return paths.strip_route(path[1:-1])


@pytest.mark.parametrize("path", PATHS, ids=ascii)
@pytest.mark.parametrize("smtputf8", [False, True])
@pytest.mark.parametrize("sender", [True, False])
def test_the_memo_answers_as_a_fresh_parse(path: str, smtputf8: bool, sender: bool) -> None:
    fresh = paths.parse_refusal(mailbox(path), smtputf8, sender)
    for _ in range(2):  # the first fills the memo, the second is answered from it
        assert paths.refusal(mailbox(path), smtputf8=smtputf8, sender=sender) == fresh


def test_the_smtputf8_flag_is_part_of_what_is_remembered() -> None:
    address = "jürgen@school.test"
    assert paths.refusal(address, smtputf8=True, sender=True) is None
    assert paths.refusal(address, smtputf8=False, sender=True) == paths.NON_ASCII_SENDER
    assert paths.refusal(address, smtputf8=True, sender=True) is None


def test_a_flood_of_new_addresses_pushes_old_ones_out_and_answers_stay_right() -> None:
    hostile = "a@b@school.test"
    assert paths.refusal(hostile, smtputf8=False, sender=False) == paths.BAD_RECIPIENT
    for n in range(paths.MEMO_SIZE + 10):
        assert paths.refusal(f"pupil{n}@school.test", smtputf8=False, sender=False) is None
    assert paths.refusal(hostile, smtputf8=False, sender=False) == paths.BAD_RECIPIENT
    assert paths.refusal("pupil0@school.test", smtputf8=False, sender=False) is None


@pytest.mark.parametrize(("path", "to_mail", "to_rcpt"), CASES, ids=ascii)
async def test_a_path_sent_again_gets_the_same_reply(
    face: Face, path: str, to_mail: tuple[int, str], to_rcpt: tuple[int, str]
) -> None:
    for _ in range(2):
        assert await mail(face, path) == to_mail
        assert await rcpt(face, path) == to_rcpt
