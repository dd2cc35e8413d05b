"""What the portal must never do: run or load anything a sender wrote, accept a form it did not
serve, answer a reviewer's route, or send a page without its protective headers."""

from __future__ import annotations

import re
import ssl
import time
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect
from web import mail

from portal.conftest import Live
from portal.test_portal_flow import SCREENSHOTS, enter_code
from rig.gatewayproc import start_gateway
from rig.ports import LOOPBACK, free_port
from rig.rig import Rig
from rig.upstream import Upstream

pytestmark = pytest.mark.e2e

CANARY = "canary.invalid"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
# Every way a message could try to run script or reach out: scripts, event handlers,
# javascript: URLs, remote images and stylesheets, CSS url(), frames, forms, meta refresh.
HOSTILE_HTML = f"""<html><head><style>body{{background:url(https://{CANARY}/css)}}</style>
<link rel="stylesheet" href="https://{CANARY}/sheet.css">
<meta http-equiv="refresh" content="0;url=https://{CANARY}/refresh"></head>
<body onload="window.__xss='onload'"><p>Rich text</p>
<script>window.__xss='html'</script>
<img src="https://{CANARY}/pixel.gif" onerror="window.__xss='pixel'">
<a href="javascript:window.__xss='href'">click</a>
<p style="background-image:url(https://{CANARY}/style)">styled</p>
<iframe src="https://{CANARY}/frame"></iframe>
<svg onload="window.__xss='svg'"><image href="https://{CANARY}/svg"/></svg>
<form action="https://{CANARY}/form"><input name=q></form>
<video src="https://{CANARY}/video" poster="https://{CANARY}/poster"></video>
</body></html>"""
HOSTILE_NAME = "\"<img src=x onerror=window.__xss='name'>\" <head@school.test>"
REVIEWER_ROUTES = [
    "/",
    "/held",
    "/audit",
    "/login",
    "/signin",
    "/tracking",
    "/allowlist",
    "/admin/users",
    "/metrics",
    "/static/style.css",
    "/m/",
    "/m/not-a-token",
]


def test_nothing_a_sender_wrote_runs_or_loads(live: Live, watched: tuple[Page, object]) -> None:
    page, watch = watched
    raw = mail.message(
        to=["foster@nosts.test"],
        subject=mail.SCRIPT_SUBJECT,
        body=mail.SCRIPT_BODY,
        html=HOSTILE_HTML,
        attachments=[(mail.SCRIPT_FILENAME, "text/html", mail.SCRIPT_ATTACHMENT)],
    )
    raw = raw.replace(b"From: head@school.test", b"From: " + HOSTILE_NAME.encode(), 1)
    path, _ = live.link("head@school.test", "foster@nosts.test", raw)
    page.goto(live.url(path))
    enter_code(page, live, "foster@nosts.test")
    expect(page.locator(".body.html")).to_contain_text("Rich text")
    expect(page.locator("h1")).to_contain_text("<script>")  # shown as text, not run
    expect(page.locator(".meta")).to_contain_text("<img src=x")
    expect(page.locator(".attachments")).to_contain_text("gpj.exe")
    body = page.locator(".body.html")
    for selector in ("script", "img", "iframe", "svg", "form", "video", "style", "[style]"):
        assert body.locator(selector).count() == 0, selector
    assert body.locator("a[href^='javascript']").count() == 0
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert watch.dialogs == []  # type: ignore[attr-defined]
    assert watch.foreign_requests == []  # type: ignore[attr-defined]
    page.reload()
    assert page.evaluate("typeof window.__xss") == "undefined"
    # The attachment named like markup is bytes to save, whatever its name and type.
    href = page.locator(".attachments a").get_attribute("href") or ""
    answer = page.request.get(live.url(href))
    assert answer.status == 200
    assert answer.headers["content-type"] == "application/octet-stream"
    assert answer.headers["content-disposition"].startswith("attachment; filename=")
    assert "filename*=UTF-8''" in answer.headers["content-disposition"]
    assert answer.headers["x-content-type-options"] == "nosniff"


def _post(page: Page, url: str, form: dict[str, str]) -> int:
    return page.request.post(url, form=form).status


def test_every_form_refuses_a_post_without_its_own_token(live: Live, page: Page) -> None:
    path, _ = live.link("head@school.test", "csrf@nosts.test", mail.message())
    other, _ = live.link("head@school.test", "csrf2@nosts.test", mail.message())
    page.goto(live.url(other))
    other_token = page.locator("input[name=csrf]").first.get_attribute("value") or ""
    page.goto(live.url(path))
    before = page.locator("input[name=csrf]").first.get_attribute("value") or ""
    cases = {
        "code": {"csrf": ""},
        "verify": {"csrf": "", "code": "12345678"},
        "reply": {"csrf": "", "text": "hello"},
    }
    for form, fields in cases.items():
        for token in ("", "forged", other_token):
            url = live.url(f"{path}/{form}")
            assert _post(page, url, {**fields, "csrf": token}) == 403, (form, token)
    assert live.codes("csrf@nosts.test") == []  # no code was sent by a forged form
    # A form from the page itself works; a reply still needs the code, then its own token.
    assert _post(page, live.url(path + "/code"), {"csrf": before}) == 200
    page.goto(live.url(path))
    page.fill("#code", live.wait_code("csrf@nosts.test"))
    page.get_by_role("button", name="Open the message").click()
    expect(page).to_have_url(live.url(path + "/view"))
    reply = live.url(path + "/reply")
    assert _post(page, reply, {"csrf": before, "text": "hello"}) == 403  # not the viewer's
    assert _post(page, reply, {"csrf": other_token, "text": "hello"}) == 403
    mine = page.locator("form[action$='/reply'] input[name=csrf]").get_attribute("value") or ""
    assert _post(page, reply, {"csrf": mine, "text": "hello"}) == 200
    headers = {"Origin": "https://attacker.invalid"}
    answer = page.request.post(reply, form={"csrf": mine, "text": "x"}, headers=headers)
    assert answer.status == 403


@pytest.mark.parametrize("route", REVIEWER_ROUTES)
def test_the_portal_answers_no_reviewer_route(live: Live, route: str) -> None:
    answer = httpx.get(live.url(route), follow_redirects=False)
    assert answer.status_code == 404
    assert "sign in" not in answer.text.lower()
    assert answer.headers["content-security-policy"].startswith("default-src 'none'")


def test_every_response_carries_the_protective_headers(live: Live, page: Page) -> None:
    path, _ = live.link("head@school.test", "headers@nosts.test", mail.message())
    for url in (path, "/healthz", "/nowhere", "/static/portal.css"):
        answer = httpx.get(live.url(url))
        headers = answer.headers
        csp = headers["content-security-policy"]
        for directive in (
            "default-src 'none'",
            "style-src 'self'",
            "img-src 'self'",
            "form-action 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
        ):
            assert directive in csp, (url, csp)
        assert "script-src" not in csp
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["cache-control"] == "no-store"
        assert "strict-transport-security" not in headers  # plain http on loopback only
    page.goto(live.url(path))
    page.get_by_role("button", name="Email me a code").click()
    page.fill("#code", live.wait_code("headers@nosts.test"))
    page.get_by_role("button", name="Open the message").click()
    [cookie] = [c for c in page.context.cookies() if c["name"] == "portal_viewer"]
    assert cookie["path"] == path
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Strict"
    assert cookie["expires"] - time.time() <= 30 * 60 + 5


def test_pages_fit_a_phone(live: Live, browser_phone: Page) -> None:
    page = browser_phone
    raw = mail.message(
        to=["mum@nosts.test"],
        subject="[SECURE] Meeting about J on Friday",
        body="Dear Mrs Jones,\n\nThank you for coming in. As agreed, the plan is attached.\n",
        attachments=[("Support plan J.pdf", "application/pdf", b"%PDF-1.4\n")],
    )
    path, _ = live.link("head@school.test", "mum@nosts.test", raw)
    page.goto(live.url(path))
    page.screenshot(path=str(SCREENSHOTS / "portal-phone-request.png"), full_page=True)
    page.get_by_role("button", name="Email me a code").click()
    page.screenshot(path=str(SCREENSHOTS / "portal-phone-code.png"), full_page=True)
    page.fill("#code", live.wait_code("mum@nosts.test"))
    page.get_by_role("button", name="Open the message").click()
    expect(page.locator("pre.body")).to_contain_text("the plan is attached")
    page.screenshot(path=str(SCREENSHOTS / "portal-phone-message.png"), full_page=True)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390  # nothing wider than the screen: no sideways scrolling


def test_over_https_the_portal_sends_hsts_and_secure_cookies(rig: Rig, tmp_path: Path) -> None:
    leaf = rig.ca.issue((LOOPBACK,), "portal")
    upstream = Upstream().start()
    port = free_port()
    gateway = start_gateway(
        rig,
        tmp_path,
        upstream,
        portal={
            "enabled": True,
            "listen": f"{LOOPBACK}:{port}",
            "public_url": f"https://{LOOPBACK}:{port}",
            "tls_cert": str(leaf.cert_file),
            "tls_key": str(leaf.key_file),
        },
    )
    try:
        gateway.proc.wait_event("portal listening", timeout=20)
        trust = ssl.create_default_context(cafile=str(rig.ca_file))
        answer = httpx.get(f"https://{LOOPBACK}:{port}/healthz", verify=trust)
        assert answer.status_code == 200
        assert answer.headers["strict-transport-security"].startswith("max-age=")
        assert "https://" in gateway.proc.output()
        # The viewer's cookie, over HTTPS, is Secure too.
        live = Live(gateway, f"https://{LOOPBACK}:{port}")
        path, _ = live.link("head@school.test", "tls@nosts.test", mail.message())
        with httpx.Client(base_url=live.base, verify=trust) as client:
            start = client.get(path)
            csrf = CSRF.search(start.text)
            assert csrf
            assert client.post(path + "/code", data={"csrf": csrf.group(1)}).status_code == 200
            code = live.wait_code("tls@nosts.test")
            form = {"csrf": csrf.group(1), "code": code}
            verified = client.post(path + "/verify", data=form)
        assert verified.status_code == 303
        cookie = verified.headers["set-cookie"]
        for attribute in ("Secure", "HttpOnly", "SameSite=strict", f"Path={path}"):
            assert attribute in cookie, cookie
    finally:
        assert gateway.proc.stop() == 0
        upstream.close()
