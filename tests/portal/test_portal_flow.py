"""A recipient who is not reached securely reads a held message on the portal: the link, the
code from the second email, the message, an attachment, a reply; and what stops everyone else
(a forwarded link, wrong codes, an expired, withdrawn or purged link)."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect
from web import mail

from portal import links
from portal.conftest import ORGANISATION, Live

pytestmark = pytest.mark.e2e

SCREENSHOTS = Path(os.environ.get("SCREENSHOTS_DIR") or tempfile.mkdtemp(prefix="portal-"))
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
    token = path.removeprefix("/m/")
    assert token not in live.gateway.proc.output()  # neither the token nor the code is logged
    assert token not in live.audit_text()


def test_five_wrong_codes_lock_the_link(live: Live, page: Page, browser_phone: Page) -> None:
    path, link_id = live.link("head@school.test", "carer@nosts.test", mail.message())
    page.goto(live.url(path))
    page.get_by_role("button", name="Email me a code").click()
    right = live.wait_code("carer@nosts.test")
    wrong = "00000000" if right.replace(" ", "") != "00000000" else "11111111"
    for left in (4, 3, 2, 1):
        page.fill("#code", wrong)
        page.get_by_role("button", name="Open the message").click()
        plural = "attempt" if left == 1 else "attempts"
        expect(page.get_by_role("alert")).to_have_text(
            f"That code is not right. {left} {plural} left."
        )
    page.fill("#code", wrong)
    page.get_by_role("button", name="Open the message").click()
    expect(page.locator("h1")).to_have_text("This link is locked")
    expect(page.locator("main")).to_contain_text("head@school.test")  # whom to ask
    page.screenshot(path=str(SCREENSHOTS / "portal-locked.png"), full_page=True)
    # Locked for good: the right code opens nothing now, on any page of the link.
    for target in (path, path + "/view"):
        response = page.goto(live.url(target))
        assert response is not None
        assert response.status == 410
        expect(page.locator("h1")).to_have_text("This link is locked")
    browser_phone.goto(live.url(path))
    browser_phone.screenshot(path=str(SCREENSHOTS / "portal-phone-locked.png"), full_page=True)
    hold_id = live.gateway.query("SELECT hold_id FROM secure_links WHERE id = ?", (link_id,))
    events = live.events(hold_id[0][0])
    assert events.count("link-code-failed") == 4, events
    assert events.count("link-locked") == 1, events
    assert right not in live.audit_text()
    assert right.replace(" ", "") not in live.audit_text()


@pytest.mark.parametrize(
    ("case", "heading"),
    [
        ("expired", "This link has expired"),
        ("revoked", "This link has been withdrawn"),
        ("purged", "This link is no longer available"),
    ],
)
def test_a_link_that_no_longer_opens_says_why_and_whom_to_ask(
    live: Live, page: Page, case: str, heading: str
) -> None:
    lifetime = 0.001 if case == "expired" else None
    path, link_id = live.link("dsl@school.test", f"{case}@nosts.test", mail.message(), lifetime)
    if case == "revoked":
        live.revoke(link_id)
    elif case == "purged":
        [(hold_id,)] = live.gateway.query(
            "SELECT hold_id FROM secure_links WHERE id = ?", (link_id,)
        )
        links.purge(live.gateway.proc.config, hold_id)
    response = page.goto(live.url(path))
    assert response is not None
    assert response.status == 410
    expect(page.locator("h1")).to_have_text(heading)
    expect(page.locator(".contact")).to_contain_text("dsl@school.test")
    expect(page.locator(".contact")).to_contain_text(link_id)
    assert page.get_by_role("button").count() == 0  # no code can be asked for
    answer = page.request.post(live.url(path + "/code"), form={"csrf": "x"})
    assert answer.status == 410


def test_a_forwarded_link_shows_nothing_without_the_mailbox(
    live: Live, page: Page, browser: Browser
) -> None:
    raw = mail.message(
        to=["gp@nosts.test"],
        body="Private notes about J.\n",
        attachments=[("notes.txt", "text/plain", b"private")],
    )
    path, _ = live.link("head@school.test", "gp@nosts.test", raw)
    # The recipient opens it on their own device...
    page.goto(live.url(path))
    enter_code(page, live, "gp@nosts.test")
    expect(page.locator("pre.body")).to_contain_text("Private notes")
    # ...and whoever they forwarded the email to has the link, but not the mailbox.
    other = browser.new_context()
    try:
        stranger = other.new_page()
        stranger.goto(live.url(path + "/view"))
        expect(stranger).to_have_url(live.url(path))  # back to "prove your address"
        expect(stranger.locator("main")).not_to_contain_text("Private notes")
        answer = stranger.request.get(live.url(path + "/a/1"))
        assert answer.status == 403
        assert b"private" not in answer.body()
        stranger.get_by_role("button", name="Email me a code").click()
        expect(stranger.get_by_role("status")).to_contain_text("less than a minute ago")
        stranger.fill("#code", "12345678")
        stranger.get_by_role("button", name="Open the message").click()
        expect(stranger.get_by_role("alert")).to_be_visible()
        expect(stranger.locator("main")).not_to_contain_text("Private notes")
    finally:
        other.close()


def test_a_reply_reaches_the_sender_through_the_upstream(live: Live, page: Page) -> None:
    path, link_id = live.link("teacher@school.test", "aunt@nosts.test", mail.message())
    page.goto(live.url(path))
    enter_code(page, live, "aunt@nosts.test")
    page.fill("#text", "Thank you. I can come to the meeting on Friday at 10.")
    page.get_by_role("button", name="Send reply").click()
    expect(page.get_by_role("status")).to_have_text("Your reply has been sent to the sender.")
    found = live.gateway.upstream.wait_for(
        1, 15, where=lambda m: m.rcpt_tos == ("teacher@school.test",) and b"Secure reply" in m.data
    )
    assert found, live.gateway.proc.output()
    assert b"I can come to the meeting on Friday at 10." in found[0].data
    assert b"aunt@nosts.test" in found[0].data
    [(hold_id,)] = live.gateway.query("SELECT hold_id FROM secure_links WHERE id = ?", (link_id,))
    assert "link-reply" in live.events(hold_id)
    assert "meeting on Friday" not in live.audit_text()  # a reply is a body: not in the trail
