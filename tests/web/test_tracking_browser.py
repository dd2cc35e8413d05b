"""The tracking page in Chromium: a reviewer finds flagged mail by sender, recipient or
Message-ID, follows one to its path (arrival, verdicts, hold, decision, how each copy left),
and the page stays CSP-clean. Signed out, it asks for a sign-in; a reviewer and an admin both
reach it. Screenshots as in test_browser.py (`make screenshots` refreshes the README's)."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest
from playwright.sync_api import Page, expect

from rig.heldcli import proofs
from web import mail
from web.test_browser import (  # the same live gateway, browser and helpers
    Live,
    Watch,
    browser,
    context,
    live,
    page,
    shot,
    sign_in,
    watched,
)

__all__ = ["browser", "context", "live", "page", "watched"]

pytestmark = pytest.mark.e2e

SECURE = "colleague@secure.test"


def _delivered(live: Live, mid: str) -> None:
    """Wait for the message's proof of delivery in the trail."""
    assert proofs(live.gateway, mid), (
        f"no proof of delivery for {mid}\n{live.gateway.proc.output()}"
    )


def _send_secure(live: Live) -> str:
    raw = mail.message(to=[SECURE], subject="[SECURE] Case conference minutes")
    reply = live.gateway.send("head@school.test", [SECURE], raw)
    assert reply.code == 250, reply
    mid = raw.split(b"Message-ID: ", 1)[1].split(b"\r\n", 1)[0].decode()
    _delivered(live, mid)
    return mid


def test_signed_out_tracking_asks_for_a_sign_in(page: Page, live: Live) -> None:
    page.goto(live.url("/tracking?recipient=secure.test"))
    expect(page).to_have_url(live.url("/signin?next=/tracking%3Frecipient%3Dsecure.test"))


def test_find_a_message_and_follow_its_path(watched: tuple[Page, Watch], live: Live) -> None:
    page, watch = watched
    mid = _send_secure(live)
    sign_in(page, live, "alice", "/tracking")
    expect(page.locator("nav a[aria-current='page']")).to_have_text("Tracking")

    page.fill("#t-recipient", SECURE)
    page.click("button:has-text('Find')")
    expect(page.locator("#result-count")).to_have_text("1 message found.")
    expect(page.locator("#tracking tbody tr")).to_contain_text(mid)

    page.goto(live.url("/tracking?message_id=" + quote(mid.strip("<>"))))
    expect(page.locator("#tracking tbody tr")).to_have_count(1)
    page.click("a:has-text('Follow')")
    # Relayed at once, its subject was never kept: the heading names it by its Message-ID.
    expect(page.locator("h1")).to_have_text(f"Message {mid}")
    expect(page.locator("#outcome-list")).to_contain_text(f"delivered to {SECURE} via")
    path = page.locator("#path")
    expect(path).to_contain_text("Received from head@school.test")
    expect(path).to_contain_text(re.compile(r"— 250 2\.0\.0 Ok: queued as \d+"))
    expect(path.locator("details.folded").first).not_to_have_attribute("open", "")
    shot(page, "tracking", full_page=True)

    # By sender: the held referrals are flagged mail too, each its own result.
    page.goto(live.url("/tracking?sender=head%40school.test"))
    # referral, script and followup were held; the case conference minutes went at once.
    expect(page.locator("#tracking tbody tr")).to_have_count(4)
    referral = live.holds["referral"]
    page.goto(live.url(f"/tracking/{referral}"))
    expect(page.locator("#path")).to_contain_text(f"Held for review as {referral}")
    # A hold keeps the subject under [notify] include_subject (on here), so it is shown.
    expect(page.locator("h1")).to_have_text("[SECURE] Referral for J (Year 4)")
    assert not watch.console_errors, watch.console_errors  # no CSP violation
    assert not watch.foreign_requests


def test_an_admin_may_track_and_unknown_ids_are_not_found(page: Page, live: Live) -> None:
    sign_in(page, live, "root", "/tracking")
    expect(page.locator("h1")).to_have_text("Tracking")
    response = page.goto(live.url("/tracking/0123456789ab"))
    assert response is not None
    assert response.status == 404
    expect(page.locator("main")).to_contain_text("Unflagged mail is logged, not audited")
