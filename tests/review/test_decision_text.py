"""A release's rationale and a reject's reason must say something: one check in the review
model, used by the command line and the web UI alike."""

from __future__ import annotations

import pytest

from gateway.errors import ReviewError
from gateway.review.model import Review, decision_text
from gateway.store import Status
from rig.upstream import Upstream

from .test_outbox import clock, held, review, upstream

__all__ = ["clock", "review", "upstream"]  # the fixtures, shared with test_outbox

# Nothing a reader would see: refused.
EMPTY = [
    ("nothing", ""),
    ("spaces", "   \t\n "),
    ("zero-width space", "\u200b"),
    ("zero-width non-joiner and joiner", "\u200c\u200d"),
    ("word joiner", "\u2060"),
    ("byte order mark", "\ufeff"),
    ("nul", "\x00"),
    ("controls", "\x01\x07\x1b\x7f\x85"),
    ("bidi marks", "\u200e\u200f\u202a\u202e\u2066\u2069"),
    ("no-break and ideographic space", "\u00a0\u3000"),
    ("line and paragraph separators", "\u2028\u2029"),
    ("hangul filler", "\u3164"),
    ("a mix", " \u200b\x00\u202e\ufeff \n"),
]
# Something to read: kept, stripped, controls other than line breaks and tabs removed.
KEPT = [
    ("words", "  Confirmed by phone ", "Confirmed by phone"),
    ("lines", "Line one\n\tline two\n", "Line one\n\tline two"),
    ("nul inside", "Confirmed\x00 by phone", "Confirmed by phone"),
    ("non-latin", "\u05d0\u05d5\u05e9\u05e8 \u200f", "\u05d0\u05d5\u05e9\u05e8 \u200f"),
    ("one digit", "\u200b1", "\u200b1"),
]


@pytest.mark.parametrize(("case", "text"), EMPTY, ids=[c for c, _ in EMPTY])
def test_a_text_with_nothing_visible_is_refused(case: str, text: str) -> None:
    with pytest.raises(ReviewError, match="needs a reason"):
        decision_text(text, "a reject needs a reason")


@pytest.mark.parametrize(("case", "text", "kept"), KEPT, ids=[c for c, _, _ in KEPT])
def test_a_text_with_something_to_read_is_kept(case: str, text: str, kept: str) -> None:
    assert decision_text(text, "refused") == kept


@pytest.mark.parametrize("text", ["\u200b", "\x00", "\ufeff \u202e"], ids=["zwsp", "nul", "bom"])
async def test_the_review_model_refuses_an_invisible_rationale_or_reason(
    review: Review, upstream: Upstream, text: str
) -> None:
    # Once recorded as the decision, and the reason the sender was told.
    hold = await held(review, "k1", "teacher@school.test")
    with pytest.raises(ReviewError, match="rationale"):
        await review.release(hold, text, "Jo")
    with pytest.raises(ReviewError, match="reason"):
        await review.reject(hold, text, "Jo")
    assert (await review.get(hold)).status is Status.HELD
