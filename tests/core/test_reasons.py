"""Every reason code has plain words for the sender and a label for reviewers."""

from __future__ import annotations

import string

import pytest

from gateway.core import reasons
from gateway.core.model import Reason


@pytest.mark.parametrize("reason", list(Reason), ids=str)
def test_every_reason_has_words_for_the_sender_and_a_label(reason: Reason) -> None:
    words = reasons.WORDS.get(reason)
    assert words is not None, f"{reason.value} has no plain words in gateway/core/reasons.py"
    assert words.sender.strip()
    assert words.label.strip()
    fields = {name for _, name, _, _ in string.Formatter().parse(words.sender) if name}
    assert fields <= {"domain", "address"}, fields
    assert len(words.label) <= 40  # it fits a filter's drop-down and a notice's line


def test_labels_tell_reasons_apart() -> None:
    labels = [w.label for w in reasons.WORDS.values()]
    assert len(set(labels)) == len(labels)


@pytest.mark.parametrize(
    ("code", "words"),
    [
        ("not-allowlisted", "unlisted.test is not on our secure-email list"),
        ("recipient-invalid", "the address b@unlisted.test could not be read"),
        ("made-up-code", "unlisted.test did not pass the check (made-up-code)"),
    ],
)
def test_sender_words_fill_in_the_domain_and_address(code: str, words: str) -> None:
    assert reasons.sender_words(code, "unlisted.test", "b@unlisted.test") == words


def test_an_unknown_code_is_its_own_label() -> None:
    assert reasons.label("made-up-code") == "made-up-code"
    assert reasons.label("sts-mx-mismatch") == "MTA-STS does not cover the MX hosts"
