"""The portal's pure parts: the HTML sanitiser's rules, the viewer's cookie and form tokens,
the request limits."""

from __future__ import annotations

import pytest

from gateway.core.securelink import VIEW_LIFETIME
from gateway.portal.content import clean_html
from gateway.portal.limits import Window
from gateway.portal.viewer import Signer

SECRET = "k" * 64


@pytest.mark.parametrize(
    ("markup", "kept", "gone"),
    [
        ("<p>Hello <b>there</b></p>", "<p>Hello <b>there</b></p>", ""),
        ("<script>window.__xss=1</script><p>x</p>", "<p>x</p>", "__xss"),
        ('<p onclick="window.__xss=1">x</p>', "<p>x</p>", "onclick"),
        ('<a href="javascript:window.__xss=1">x</a>', ">x</a>", "javascript"),
        ('<a href="https://example.test/">x</a>', 'rel="noopener noreferrer nofollow"', ""),
        ('<img src="https://tracker.invalid/p.gif">', "", "tracker"),
        ('<p style="background:url(https://c.invalid/)">x</p>', "<p>x</p>", "c.invalid"),
        ("<style>p{background:url(https://c.invalid/)}</style>", "", "c.invalid"),
        ('<iframe src="https://a.invalid/"></iframe>', "", "a.invalid"),
        ('<form action="https://a.invalid/"><input></form>', "", "a.invalid"),
        ('<svg><image href="https://a.invalid/"/></svg>', "", "a.invalid"),
        ('<base href="https://a.invalid/">', "", "a.invalid"),
        ('<meta http-equiv="refresh" content="0;url=https://a.invalid/">', "", "a.invalid"),
        ("<!-- <script>x</script> -->", "", "script"),
    ],
)
def test_html_keeps_formatting_and_drops_what_runs_or_loads(
    markup: str, kept: str, gone: str
) -> None:
    cleaned = clean_html(markup)
    assert kept in cleaned
    if gone:
        assert gone not in cleaned


def test_the_viewer_cookie_proves_one_link_for_a_while() -> None:
    signer = Signer(SECRET)
    viewer, cookie = signer.new_viewer("L1", 1000.0)
    assert signer.viewer(cookie, "L1", 1000.0 + 60) == viewer
    assert signer.viewer(cookie, "L2", 1000.0 + 60) is None  # another link
    assert signer.viewer(cookie, "L1", 1000.0 + VIEW_LIFETIME + 1) is None  # too old
    assert signer.viewer(cookie + "x", "L1", 1000.0) is None  # tampered
    assert Signer("o" * 64).viewer(cookie, "L1", 1000.0) is None  # another key


def test_a_form_token_is_bound_to_its_link_and_viewer() -> None:
    signer = Signer(SECRET)
    viewer, _ = signer.new_viewer("L1", 1000.0)
    other, _ = signer.new_viewer("L1", 1000.0)
    before = signer.form_token("L1")
    after = signer.form_token("L1", viewer)
    assert signer.form_ok(before, "L1")
    assert not signer.form_ok(before, "L2")
    assert not signer.form_ok(before, "L1", viewer)
    assert signer.form_ok(after, "L1", viewer)
    assert not signer.form_ok(after, "L1", other)
    assert not signer.form_ok("", "L1")


def test_a_window_allows_its_limit_then_refuses_until_time_passes() -> None:
    now = [0.0]
    window = Window(3, 60.0, clock=lambda: now[0])
    assert [window.allow("a") for _ in range(4)] == [True, True, True, False]
    assert window.allow("b")  # each key counts alone
    now[0] = 61.0
    assert window.allow("a")
