"""Sending by secure link from the review web UI, in Chromium, against `gateway serve` with
the portal on: the third decision on a hold's page and its confirmation, the link email
reaching the recipient's side of the rig's upstream and opening the portal, the hold's links
with their state, revoking one, a second decision told plainly, CSRF on the new forms, and
markup in the recipient's address and the rationale rendered inert. Screenshots as in
test_browser.py."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from rig.gatewayproc import is_notice, readable, start_gateway
from rig.ports import LOOPBACK, free_port
from rig.rig import Rig
from rig.upstream import Message, Upstream
from web import mail
from web.test_browser import (  # the same browser and helpers, another gateway
    HOLD_ID,
    METRICS_TOKEN,
    Live,
    Watch,
    _users,
    browser,
    context,
    page,
    shot,
    sign_in,
    watched,
)

__all__ = ["browser", "context", "page", "watched"]

pytestmark = pytest.mark.e2e

SUBJECT = "[SECURE] Child protection plan for K"
BODY = "K's review conference is on Thursday; the plan is attached.\n"
XSS_RECIPIENT = "\"<img src=x onerror=window.__xss='rcpt'>\"@nosts.test"
XSS_RATIONALE = (
    "Agreed by phone.<script>window.__xss='rationale'</script>"
    "<img src=x onerror=\"window.__xss='img'\">"
)
LINK = re.compile(rf"http://{re.escape(LOOPBACK)}:\d+/m/[A-Za-z0-9_-]{{43}}(?![A-Za-z0-9_-])")
DECISION = "section[aria-labelledby=decision]"
MANY = [f"carer{n}@nosts.test" for n in range(8)]


@pytest.fixture(scope="module")
def live(rig: Rig, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    upstream = Upstream().start()
    port, portal = free_port(), free_port()
    gateway = start_gateway(
        rig,
        tmp_path_factory.mktemp("web-links"),
        upstream,
        web={"enabled": True, "listen": f"{LOOPBACK}:{port}", "metrics_token": METRICS_TOKEN},
        notify={"organisation": "Oak Primary School"},
        review={"reviewers": ["dsl@school.test"]},
        portal={
            "enabled": True,
            "listen": f"{LOOPBACK}:{portal}",
            "public_url": f"http://{LOOPBACK}:{portal}",
        },
    )
    try:
        _users(gateway.proc.config, "alice", "reviewer")
        _users(gateway.proc.config, "bob", "reviewer")
        yield Live(gateway, f"http://{LOOPBACK}:{port}")
    finally:
        status = gateway.proc.stop()
        upstream.close()
        assert status == 0, f"gateway serve exited {status}\n{gateway.proc.output()}"


def _held(live: Live, name: str, to: list[str], **fields: object) -> str:
    if name not in live.holds:
        raw = mail.message(to=to, **fields)  # type: ignore[arg-type]
        reply = live.gateway.send("head@school.test", to, raw)
        assert reply.code == 250, reply
        found = HOLD_ID.search(reply.text)
        assert found, reply
        live.holds[name] = found.group(1)
        live.sent[name] = raw
    return live.holds[name]


def _link_emails(live: Live, to: str) -> list[Message]:
    def link(message: Message) -> bool:
        return is_notice(message) and message.rcpt_tos == (to,) and b"/m/" in message.data

    return live.gateway.upstream.wait_for(1, where=link)


def _send_link(page: Page, live: Live, hold_id: str, rationale: str) -> None:
    page.goto(live.url(f"/held/{hold_id}"))
    page.fill("#link-rationale", rationale)
    page.click("button:has-text('Send by secure link…')")
    expect(page.locator("h1")).to_have_text("Confirm: send by secure link?")
    page.click("#confirm")
    expect(page.locator(".badge-linked").first).to_be_visible()


def test_send_by_secure_link_from_the_hold_page(page: Page, live: Live) -> None:
    hold_id = _held(live, "plan", ["parent@nosts.test"], subject=SUBJECT, body=BODY)
    sign_in(page, live, "alice", f"/held/{hold_id}")
    decision = page.locator(".decision-link")
    expect(decision).to_contain_text("a link to read it in the browser")
    # The browser will not send an empty rationale; the server would ask again too.
    page.click("button:has-text('Send by secure link…')")
    expect(page).to_have_url(live.url(f"/held/{hold_id}"))

    rationale = "Mum has no secure email; she confirmed her address at the meeting today."
    page.fill("#link-rationale", rationale)
    page.click("button:has-text('Send by secure link…')")
    expect(page.locator("h1")).to_have_text("Confirm: send by secure link?")
    expect(page.locator("#decision-recipients")).to_have_text("parent@nosts.test")
    expect(page.locator("#decision-text")).to_have_text(rationale)
    receives = page.locator("#link-receives")
    expect(receives).to_contain_text("no part of the message in it")
    expect(receives).to_contain_text("one-time code in a second email")
    expect(page.locator("#notice-preview")).to_contain_text("To: head@school.test")
    expect(page.locator("#notice-preview")).to_contain_text("parent@nosts.test")
    shot(page, "confirm-link")
    assert not _sent_links(live, "parent@nosts.test")  # not before confirming

    page.click("#confirm")
    expect(page).to_have_url(live.url(f"/held/{hold_id}"))
    expect(page.locator(".flash")).to_contain_text("Sent by secure link to parent@nosts.test")
    expect(page.locator(".badge-linked").first).to_have_text("Sent by secure link")
    assert live.status(hold_id) == "linked"
    expect(page.locator(DECISION)).to_contain_text(rationale)

    [email] = _link_emails(live, "parent@nosts.test")
    text = readable(email)
    link = LINK.search(text)
    assert link, text
    assert SUBJECT not in text, text
    assert "review conference" not in text, text
    assert live.gateway.relayed(of=live.sent["plan"]) == []  # the message itself never left

    recipient = page.context.browser.new_context()  # type: ignore[union-attr]
    try:  # the link works: the portal asks the recipient for a code
        portal = recipient.new_page()
        portal.goto(link.group(0))
        expect(portal.locator("h1")).to_have_text("A secure message for you")
        expect(portal.locator("button:has-text('Email me a code')")).to_be_visible()
    finally:
        recipient.close()

    page.reload()
    row = page.locator("#link-list tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("parent@nosts.test")
    expect(row.locator(".link-state")).to_have_text("Not opened yet: no code asked for")
    expect(row.locator("summary:has-text('Revoke…')")).to_be_visible()
    shot(page, "held-linked", full_page=True)

    page.goto(live.url(f"/audit?hold={hold_id}"))
    sent = page.locator("table.audit tbody tr", has=page.locator(".event-link-sent"))
    expect(sent).to_contain_text("alice")
    expect(sent).to_contain_text("parent@nosts.test")


def _sent_links(live: Live, to: str) -> list[Message]:
    return [m for m in live.gateway.notices() if m.rcpt_tos == (to,) and b"/m/" in m.data]


def test_the_dashboard_and_queue_count_linked_holds(page: Page, live: Live) -> None:
    hold_id = _held(live, "count", ["uncle@nosts.test"])
    sign_in(page, live, "alice", "/")
    before = int(page.locator("#count-linked").inner_text())
    _send_link(page, live, hold_id, "Confirmed with the social worker.")
    page.goto(live.url("/"))
    expect(page.locator("#count-linked")).to_have_text(str(before + 1))
    page.click("a.stat:has-text('sent by secure link this week')")
    expect(page).to_have_url(live.url("/held?status=linked"))
    expect(page.locator(f"#queue tr[data-hold='{hold_id}']")).to_contain_text("Sent by secure link")
    expect(page.locator("#f-status")).to_have_value("linked")


def test_revoke_a_link_with_a_reason(page: Page, live: Live) -> None:
    hold_id = _held(live, "revoke", ["gran@nosts.test"])
    sign_in(page, live, "alice", f"/held/{hold_id}")
    _send_link(page, live, hold_id, "Gran is the named carer.")
    row = page.locator("#link-list tbody tr")
    row.locator("summary:has-text('Revoke…')").click()
    button = row.locator("button:has-text('Revoke this link')")
    button.click()  # no reason: the browser does not send it
    expect(row.locator(".link-state")).to_have_text("Not opened yet: no code asked for")
    reason = "Wrong address: gran uses a different mailbox."
    row.locator("textarea").fill(reason)
    button.click()
    expect(page.locator(".flash")).to_have_text(
        "Revoked the link to gran@nosts.test: it no longer opens the message."
    )
    expect(row.locator(".link-state")).to_have_text(re.compile(r"^Revoked by alice on "))
    expect(row.locator("summary:has-text('Revoke…')")).to_have_count(0)
    page.goto(live.url(f"/audit?hold={hold_id}"))
    revoked = page.locator("table.audit tbody tr", has=page.locator(".event-link-revoked"))
    expect(revoked).to_contain_text("alice")
    expect(revoked).to_contain_text(reason)


def test_a_second_decision_is_told_plainly(page: Page, live: Live) -> None:
    hold_id = _held(live, "race", ["aunt@nosts.test"])
    sign_in(page, live, "alice", f"/held/{hold_id}")
    page.fill("#rationale", "Aunt confirmed her address.")
    page.click("button:has-text('Release…')")
    expect(page.locator("h1")).to_have_text("Confirm: release and send?")

    other = page.context.browser.new_context()  # type: ignore[union-attr]
    try:
        bob = other.new_page()
        sign_in(bob, live, "bob", f"/held/{hold_id}")
        _send_link(bob, live, hold_id, "Sending by link instead: no secure email.")
    finally:
        other.close()

    page.click("#confirm")  # alice confirms a release bob has already overtaken
    expect(page.locator(".flash")).to_have_text(
        "This message is already sent by secure link: nothing was done."
    )
    assert live.gateway.relayed(of=live.sent["race"]) == []


def test_the_new_forms_need_the_csrf_token(page: Page, live: Live) -> None:
    hold_id = _held(live, "forged", ["cousin@nosts.test"])
    linked = _held(live, "forged-linked", ["sibling@nosts.test"])
    sign_in(page, live, "alice", f"/held/{linked}")
    _send_link(page, live, linked, "For the forged-revoke check.")
    link_id = page.locator("#link-list tbody tr").get_attribute("data-link")
    forms = [
        (f"/held/{hold_id}/send-link", {"text": "forged", "confirmed": "yes"}),
        (f"/held/{linked}/links/{link_id}/revoke", {"text": "forged"}),
    ]
    for path, form in forms:
        for extra in ({}, {"csrf": "forged-token"}):
            response = page.request.post(live.url(path), form={**form, **extra})
            assert response.status == 403, path
            assert "nothing was done" in response.text()
    assert live.status(hold_id) == "held"
    page.reload()
    expect(page.locator("#link-list .link-state")).to_have_text(re.compile("^Not opened yet"))


def test_markup_in_the_recipient_and_rationale_renders_inert(
    watched: tuple[Page, Watch], live: Live
) -> None:
    page, watch = watched
    hold_id = _held(live, "xss", [XSS_RECIPIENT])
    sign_in(page, live, "alice", f"/held/{hold_id}")
    page.fill("#link-rationale", XSS_RATIONALE)
    page.click("button:has-text('Send by secure link…')")
    expect(page.locator("#decision-recipients")).to_have_text(XSS_RECIPIENT)
    expect(page.locator("#decision-text")).to_have_text(XSS_RATIONALE)
    page.click("#confirm")
    expect(page.locator("#link-list tbody tr .address")).to_have_text(XSS_RECIPIENT)
    expect(page.locator(DECISION)).to_contain_text(XSS_RATIONALE)
    page.goto(live.url(f"/audit?hold={hold_id}"))
    expect(page.locator("table.audit tbody")).to_contain_text(XSS_RATIONALE)
    assert page.locator("main script, main img, main iframe").count() == 0
    assert page.evaluate("() => window.__xss") is None
    assert watch.dialogs == []
    assert watch.foreign_requests == []


def test_many_links_fold(page: Page, live: Live) -> None:
    hold_id = _held(live, "many", MANY)
    sign_in(page, live, "alice", f"/held/{hold_id}")
    _send_link(page, live, hold_id, "Every carer of the sibling group.")
    expect(page.locator("#link-list tbody tr")).to_have_count(5)
    more = page.locator("section[aria-labelledby=links] details.more")
    expect(more.locator("> summary")).to_have_text("and 3 more links")
    expect(more.get_by_text(MANY[-1])).to_be_hidden()
    more.locator("> summary").click()
    expect(more.get_by_text(MANY[-1])).to_be_visible()
