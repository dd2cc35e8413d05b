"""A recipient who is not reached securely reads a held message on the portal: the link, the
code from the second email, the message, an attachment, a reply; and what stops everyone else
(a forwarded link, wrong codes, an expired, withdrawn or purged link)."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from portal import links
from portal.conftest import ORGANISATION, Live
from web import mail

pytestmark = pytest.mark.e2e

SCREENSHOTS = Path(os.environ.get("SCREENSHOTS_DIR") or tempfile.mkdtemp(prefix="portal-"))
PHONE = {"width": 390, "height": 844}
REFERRAL = (
    "Dear Ms Patel,\n\nFurther to our call, the referral form for J is attached. Please ring me "
    "on 01632 960 123 before 3 pm.\n\nHead teacher\n"
)
FORM = b"%PDF-1.4\n% referral form\n"


def enter_code(page: Page, live: Live, recipient: str, count: int = 1) -> None:
    page.get_by_role("button", name=re.compile("Email me a")).click()
    expect(page.get_by_role("status")).to_contain_text("emailed you a code")
    page.fill("#code", live.wait_code(recipient, count))
    page.get_by_role("button", name="Open the message").click()


def test_the_recipient_reads_the_message_and_downloads_its_attachment(
    live: Live, context: BrowserContext, page: Page
) -> None:
    raw = mail.message(
        to=["parent@nosts.test"],
        subject="[SECURE] Referral for J",
        body=REFERRAL,
        attachments=[("Referral form J.pdf", "application/pdf", FORM)],
    )
    path, link_id = live.link("head@school.test", "parent@nosts.test", raw)
    page.goto(live.url(path))
    expect(page.locator("main")).to_contain_text("head@school.test")
    expect(page.locator("main")).to_contain_text(ORGANISATION)
    expect(page.locator("main")).not_to_contain_text("Referral")  # nothing before the code
    page.screenshot(path=str(SCREENSHOTS / "portal-request.png"), full_page=True)

    page.get_by_role("button", name="Email me a code").click()
    expect(page.get_by_role("status")).to_contain_text("emailed you a code")
    page.screenshot(path=str(SCREENSHOTS / "portal-code.png"), full_page=True)
    page.fill("#code", live.wait_code("parent@nosts.test"))
    page.get_by_role("button", name="Open the message").click()

    expect(page).to_have_url(live.url(path + "/view"))
    expect(page.locator("pre.body")).to_contain_text("ring me on 01632 960 123")
    expect(page.locator("h1")).to_have_text("[SECURE] Referral for J")
    page.screenshot(path=str(SCREENSHOTS / "portal-message.png"), full_page=True)
    with page.expect_download() as downloading:
        page.get_by_role("link", name="Referral form J.pdf").click()
    download = downloading.value
    assert download.suggested_filename == "Referral form J.pdf"
    assert Path(download.path()).read_bytes() == FORM

    # The sender is told of the first view, once; the trail has every step.
    hold_id = live.gateway.query("SELECT hold_id FROM secure_links WHERE id = ?", (link_id,))
    events = live.events(hold_id[0][0])
    for event in ("link-code-sent", "link-opened", "link-attachment-downloaded"):
        assert event in events, events
    page.reload()
    assert live.events(hold_id[0][0]).count("link-opened") == 1
    assert "link-viewed" in live.events(hold_id[0][0])
    opened = live.gateway.upstream.wait_for(
        1, 15, where=lambda m: "head@school.test" in m.rcpt_tos and b"Opened by" in m.data
    )
    assert opened, live.gateway.proc.output()
