"""The review web UI in a real browser: Debian's Chromium, headless, driven by Playwright,
against `gateway serve` with [web] on, started for the rig (DNS + HTTPS servers on loopback)
with a recording upstream. The holds are made the real way, by mail sent over SMTP.

Screenshots go to a temporary folder; `make screenshots` (SCREENSHOTS_DIR=docs/screenshots)
refreshes the README's, so an ordinary test run never rewrites files in the repository.
"""

from __future__ import annotations

import os
import re
import sqlite3
import ssl
import subprocess
import tempfile
import time
import tomllib
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from rig import tomlwrite
from rig.cli import clean_env, gateway_script, run_gateway
from rig.gatewayproc import Gateway, is_notice, start_gateway
from rig.ports import LOOPBACK, free_port
from rig.rig import Rig
from rig.upstream import Upstream
from web import mail

pytestmark = pytest.mark.e2e

SCREENSHOTS = Path(os.environ.get("SCREENSHOTS_DIR") or tempfile.mkdtemp(prefix="screens-"))
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "correct horse battery staple"
METRICS_TOKEN = "t" * 40
HOLD_ID = re.compile(r"held for review as ([0-9a-f]+)")
HOUR = 3600


@dataclass
class Live:
    gateway: Gateway
    base: str
    holds: dict[str, str] = field(default_factory=dict)  # name -> hold id
    sent: dict[str, bytes] = field(default_factory=dict)  # name -> message

    def url(self, path: str) -> str:
        return self.base + path

    def status(self, hold_id: str) -> str:
        with closing(sqlite3.connect(self.gateway.held_db, timeout=10)) as db:
            [status] = db.execute("SELECT status FROM holds WHERE id = ?", (hold_id,)).fetchone()
        return str(status)


def _users(config: Path, name: str, role: str) -> None:
    result = subprocess.run(
        [str(gateway_script()), "users", "add", name, "--role", role, "--config", str(config)],
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def _hold(gateway: Gateway, sender: str, to: str, raw: bytes) -> str:
    reply = gateway.send(sender, [to], raw)
    assert reply.code == 250, reply
    found = HOLD_ID.search(reply.text)
    assert found, reply
    return found.group(1)


def _backdate(gateway: Gateway, hold_id: str, seconds: float) -> None:
    with closing(sqlite3.connect(gateway.held_db, timeout=10)) as db, db:
        db.execute("UPDATE holds SET created_at = created_at - ? WHERE id = ?", (seconds, hold_id))


def _wait_escalated(gateway: Gateway, count: int) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with closing(sqlite3.connect(gateway.held_db, timeout=10)) as db:
            query = "SELECT count(*) FROM holds WHERE escalated_at IS NOT NULL"
            if db.execute(query).fetchone()[0] >= count:
                return
        time.sleep(0.1)
    raise AssertionError(f"the sweep did not escalate {count} holds\n{gateway.proc.output()}")


@pytest.fixture(scope="module")
def live(rig: Rig, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    upstream = Upstream().start()
    port = free_port()
    gateway = start_gateway(
        rig,
        tmp_path_factory.mktemp("web-live"),
        upstream,
        web={"enabled": True, "listen": f"{LOOPBACK}:{port}", "metrics_token": METRICS_TOKEN},
        notify={"organisation": "Oak Primary School", "include_subject": True},
        review={"reviewers": ["dsl@school.test"], "sweep_interval": "1s"},
        portal={"public_url": f"http://{LOOPBACK}:{free_port()}"},  # the third decision shows
    )
    try:
        _users(gateway.proc.config, "alice", "reviewer")
        _users(gateway.proc.config, "root", "admin")
        live = Live(gateway, f"http://{LOOPBACK}:{port}")
        messages = {
            "referral": (
                "head@school.test",
                "officer@nosts.test",
                mail.message(
                    subject="[SECURE] Referral for J (Year 4)",
                    body="Dear Officer Reed,\n\nFurther to our call, the referral form for J is "
                    "attached. J told his class teacher this morning that he did not want to go "
                    "home. Please ring me on 01632 960 123 before 3 pm.\n\nHead teacher\n",
                    attachments=[("Referral form J.pdf", "application/pdf", b"%PDF-1.4\n%..\n")],
                ),
            ),
            "attendance": (
                "teacher@school.test",
                "caseworker@unlisted.test",
                mail.message(
                    subject="[SECURE] Attendance concerns", to=["caseworker@unlisted.test"]
                ),
            ),
            "script": ("head@school.test", "officer@nosts.test", mail.script_message()),
            "strategy": (
                "dsl@school.test",
                "social.worker@mxmismatch.test",
                mail.message(
                    sender="dsl@school.test",
                    subject="[SECURE] Strategy meeting notes",
                    to=["social.worker@mxmismatch.test"],
                ),
            ),
            "followup": (
                "head@school.test",
                "nurse@nosts.test",
                mail.message(subject="[SECURE] Follow-up after the visit", to=["nurse@nosts.test"]),
            ),
        }
        for name, (sender, to, raw) in messages.items():
            live.holds[name] = _hold(gateway, sender, to, raw)
            live.sent[name] = raw
        _backdate(gateway, live.holds["strategy"], 6 * HOUR)
        _backdate(gateway, live.holds["followup"], 27 * HOUR)
        _backdate(gateway, live.holds["attendance"], 50 * 60)
        _wait_escalated(gateway, 2)
        yield live
    finally:
        status = gateway.proc.stop()
        upstream.close()
        assert status == 0, f"gateway serve exited {status}\n{gateway.proc.output()}"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no {CHROMIUM}: `make test` installs Debian's chromium package")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class Watch:
    """What a page did that it never should: dialogs, CSP violations, requests elsewhere."""

    dialogs: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    foreign_requests: list[str] = field(default_factory=list)


@pytest.fixture
def context(browser: Browser, live: Live) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 860}, accept_downloads=True)
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def watched(context: BrowserContext, live: Live) -> tuple[Page, Watch]:
    page = context.new_page()
    watch = Watch()

    def on_dialog(dialog: object) -> None:
        watch.dialogs.append(dialog.message)  # type: ignore[attr-defined]
        dialog.dismiss()  # type: ignore[attr-defined]

    page.on("dialog", on_dialog)
    page.on(
        "console",
        lambda m: watch.console_errors.append(m.text) if m.type == "error" else None,
    )
    page.on(
        "request",
        lambda r: None if r.url.startswith(live.base) else watch.foreign_requests.append(r.url),
    )
    return page, watch


@pytest.fixture
def page(watched: tuple[Page, Watch]) -> Page:
    return watched[0]


def sign_in(page: Page, live: Live, name: str, path: str = "/") -> None:
    page.goto(live.url(path))
    expect(page).to_have_url(re.compile(r"/signin\?next="))
    page.fill("#name", name)
    page.fill("#password", PASSWORD)
    page.click("button:has-text('Sign in')")
    expect(page.locator(".who")).to_contain_text(name)


def shot(page: Page, name: str, full_page: bool = False) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)


# --- the tests, in the order a reviewer's morning goes ------------------------------------------


def test_signed_out_access_goes_to_sign_in_and_back(page: Page, live: Live) -> None:
    page.goto(live.url("/held?domain=nosts.test"))
    expect(page).to_have_url(live.url("/signin?next=/held%3Fdomain%3Dnosts.test"))
    expect(page.locator("h1")).to_have_text("Sign in")
    shot(page, "signin")
    page.fill("#name", "alice")
    page.fill("#password", PASSWORD)
    page.click("button:has-text('Sign in')")
    expect(page).to_have_url(live.url("/held?domain=nosts.test"))
    page.click("button:has-text('Sign out')")
    expect(page).to_have_url(live.url("/signin?out=1"))
    expect(page.locator(".flash")).to_have_text("You have signed out.")
    page.goto(live.url("/"))
    expect(page).to_have_url(re.compile(r"/signin\?next=/$"))


def test_dashboard_counts(page: Page, live: Live) -> None:
    sign_in(page, live, "alice")
    expect(page.locator("#count-held")).to_have_text("5")
    expect(page.locator("#count-escalated")).to_have_text("2")
    expect(page.locator("#count-released")).to_have_text("0")
    expect(page.locator("#oldest")).to_have_text(re.compile(r"^27 h"))
    shot(page, "dashboard")


def test_filter_and_sort_the_queue(page: Page, live: Live) -> None:
    sign_in(page, live, "alice", "/held")
    rows = page.locator("#queue tbody tr")
    expect(rows).to_have_count(5)
    # Oldest first, and the escalated ones stand out.
    expect(rows.first).to_have_attribute("data-hold", live.holds["followup"])
    expect(rows.first.locator(".badge-escalated")).to_have_text("Escalated")
    expect(page.locator("tr.row-escalated")).to_have_count(2)
    shot(page, "queue")

    page.fill("#f-domain", "unlisted.test")
    page.click("button:has-text('Show')")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-hold", live.holds["attendance"])
    expect(rows.first).to_contain_text("unlisted.test is not on our secure-email list")

    page.click("text=Clear")
    page.select_option("#f-reason", "sts-mx-mismatch")
    page.click("button:has-text('Show')")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-hold", live.holds["strategy"])

    page.click("text=Clear")
    page.select_option("#f-age", "gt1d")
    page.click("button:has-text('Show')")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-hold", live.holds["followup"])

    page.click("text=Clear")
    page.fill("#f-sender", "teacher@")
    page.select_option("#f-sort", "newest")
    page.click("button:has-text('Show')")
    expect(rows).to_have_count(1)

    page.click("text=Clear")
    page.select_option("#f-sort", "sender")
    page.click("button:has-text('Show')")
    senders = [t.split()[0] for t in rows.locator("td:nth-child(2)").all_inner_texts()]
    assert senders == sorted(senders)


def test_release_with_a_rationale(page: Page, live: Live) -> None:
    hold_id = live.holds["referral"]
    sign_in(page, live, "alice", f"/held/{hold_id}")
    expect(page.locator("h1")).to_have_text("[SECURE] Referral for J (Year 4)")
    expect(page.locator("#message-text")).to_contain_text("did not want to go home")
    expect(page.locator("#attachments")).to_contain_text("Referral form J.pdf")
    shot(page, "message", full_page=True)

    # The browser will not send an empty rationale; the server would refuse it too.
    page.click("button:has-text('Release…')")
    expect(page).to_have_url(live.url(f"/held/{hold_id}"))

    rationale = "Officer Reed confirmed by phone that this is her work address; J is at risk today."
    page.fill("#rationale", rationale)
    page.click("button:has-text('Release…')")
    expect(page.locator("h1")).to_have_text("Confirm: release and send?")
    expect(page.locator("#decision-text")).to_have_text(rationale)
    preview = page.locator("#notice-preview")
    expect(preview).to_contain_text("To: head@school.test")
    expect(preview).to_contain_text("was reviewed and released by alice")
    expect(preview).to_contain_text("It has now been sent to: officer@nosts.test")
    shot(page, "confirm-release")
    assert live.gateway.relayed(of=live.sent["referral"]) == []  # not before confirming

    page.click("#confirm")
    expect(page).to_have_url(live.url(f"/held/{hold_id}"))
    expect(page.locator(".flash")).to_contain_text("Released: sent to officer@nosts.test")
    expect(page.locator(".badge-released").first).to_be_visible()
    [relayed] = live.gateway.wait_relayed(1, of=live.sent["referral"])
    assert relayed.rcpt_tos == ("officer@nosts.test",)
    assert b"by=alice" in relayed.data

    page.goto(live.url(f"/audit?hold={hold_id}"))
    table = page.locator("table.audit tbody")
    expect(table).to_contain_text("release-requested")
    expect(table).to_contain_text(rationale)
    released = table.locator("tr", has=page.locator(".event-released"))
    expect(released).to_contain_text("alice")
    expect(released).to_contain_text("officer@nosts.test")
    expect(table.locator("tr", has=page.locator(".event-viewed")).first).to_contain_text("alice")
    shot(page, "audit")


def test_reject_with_a_reason(page: Page, live: Live) -> None:
    hold_id = live.holds["attendance"]
    sign_in(page, live, "alice", f"/held/{hold_id}")
    reason = "Please share this through the council's secure portal instead."
    page.fill("#reason", reason)
    page.click("button:has-text('Reject…')")
    expect(page.locator("h1")).to_have_text("Confirm: reject, do not send?")
    expect(page.locator("#notice-preview")).to_contain_text(f"Reason: {reason}")
    page.click("#confirm")
    expect(page.locator(".flash")).to_contain_text("Rejected")
    assert live.status(hold_id) == "rejected"

    def told(message: object) -> bool:
        return is_notice(message) and reason.encode() in message.data  # type: ignore[attr-defined]

    [notice] = live.gateway.upstream.wait_for(1, where=told)
    assert notice.rcpt_tos == ("teacher@school.test",)
    assert live.gateway.relayed(of=live.sent["attendance"]) == []

    page.goto(live.url("/audit"))
    page.fill("#a-q", "secure portal")
    page.click("button:has-text('Search')")
    rows = page.locator("table.audit tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("rejected")
    expect(rows.first).to_contain_text("alice")


def test_script_payloads_render_inert(watched: tuple[Page, Watch], live: Live) -> None:
    page, watch = watched
    hold_id = live.holds["script"]
    sign_in(page, live, "alice", "/held")
    expect(page.locator(f"tr[data-hold='{hold_id}'] .subject")).to_have_text(mail.SCRIPT_SUBJECT)
    page.goto(live.url(f"/held/{hold_id}"))
    expect(page.locator("h1")).to_have_text(mail.SCRIPT_SUBJECT)
    text = page.locator("#message-text")
    expect(text).to_contain_text("<script>window.__xss='body'")
    expect(text).to_contain_text("<img src=x onerror=")
    expect(text).to_contain_text('</pre><iframe src="https://attacker.invalid/"></iframe>')
    expect(page.locator("#attachments")).to_contain_text("onerror=\"window.__xss='file'\"")
    expect(page.locator("#attachments")).to_contain_text("\\u202egpj.exe")
    assert page.locator("script, iframe, object, embed").count() == 0
    assert page.locator("main img").count() == 0
    assert page.evaluate("() => window.__xss") is None

    with page.expect_download() as caught:
        page.click("#attachments a:has-text('Download')")
    download = caught.value
    assert "<" not in download.suggested_filename
    assert "\u202e" not in download.suggested_filename
    assert download.suggested_filename.endswith("gpj.exe")
    assert Path(download.path()).read_bytes() == mail.SCRIPT_ATTACHMENT
    href = page.locator("#attachments a:has-text('Download')").get_attribute("href")
    response = page.request.get(live.url(str(href)))
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-disposition"].startswith("attachment;")
    assert response.headers["x-content-type-options"] == "nosniff"

    assert page.evaluate("() => window.__xss") is None
    assert watch.dialogs == []
    assert watch.foreign_requests == []
    assert not [e for e in watch.console_errors if "Content Security Policy" in e]


def test_a_post_without_the_csrf_token_is_refused(page: Page, live: Live) -> None:
    hold_id = live.holds["strategy"]
    sign_in(page, live, "alice", f"/held/{hold_id}")
    form = {"text": "forged", "confirmed": "yes"}
    for extra in ({}, {"csrf": "forged-token"}):
        response = page.request.post(live.url(f"/held/{hold_id}/reject"), form={**form, **extra})
        assert response.status == 403
        assert "nothing was done" in response.text()
    assert live.status(hold_id) == "held"
    page.reload()
    expect(page.locator(".badge-held")).to_be_visible()


def test_a_reviewer_cannot_reach_admin_pages(context: BrowserContext, live: Live) -> None:
    reviewer = context.new_page()
    sign_in(reviewer, live, "alice")
    expect(reviewer.locator("nav")).not_to_contain_text("Accounts")
    response = reviewer.goto(live.url("/admin/users"))
    assert response is not None
    assert response.status == 403
    expect(reviewer.locator("h1")).to_have_text("Only for administrators")
    reviewer.click("button:has-text('Sign out')")

    sign_in(reviewer, live, "root", "/admin/users")
    reviewer.fill("#new-name", "sam.jones")
    reviewer.select_option("#new-role", "reviewer")
    reviewer.fill("#new-password", PASSWORD)
    reviewer.fill("#new-again", PASSWORD)
    reviewer.click("button:has-text('Add account')")
    expect(reviewer.locator(".flash")).to_have_text("Added sam.jones (reviewer).")
    expect(reviewer.locator("tr[data-user='sam.jones']")).to_contain_text("active")
    shot(reviewer, "accounts")
    reviewer.goto(live.url("/audit?event=user-added"))
    expect(reviewer.locator("table.audit tbody")).to_contain_text("root")
    expect(reviewer.locator("table.audit tbody")).to_contain_text("sam.jones")


def test_allowlist_with_live_posture(page: Page, live: Live) -> None:
    sign_in(page, live, "alice", "/allowlist")
    secure = page.locator("tr[data-domain='secure.test']")
    expect(secure.locator(".badge")).to_have_text("secure")
    expect(secure).to_contain_text("via mta-sts-enforce")
    nosts = page.locator("tr[data-domain='nosts.test']")
    expect(nosts.locator(".badge")).to_have_text("not-secure")
    expect(nosts).to_contain_text("sts-no-record")
    shot(page, "allowlist")
    secure.locator("a:has-text('Details')").click()
    expect(page.locator("#report")).to_contain_text("secure.test  SECURE via mta-sts-enforce")
    expect(page.locator("#report")).to_contain_text("mx patterns")


def test_allowlist_page_says_since_when_and_from_which_files_the_list_is_in_force(
    page: Page, live: Live, rig: Rig
) -> None:
    sign_in(page, live, "alice", "/allowlist")
    loaded = page.locator("#allowlist-loaded")
    expect(loaded).to_contain_text("In force since")
    expect(loaded).to_contain_text(f"read from {rig.allowlist_file}")
    expect(loaded).to_contain_text("gateway reload")


def _probe_allowlist(rig: Rig, live: Live, mx_port: int) -> subprocess.CompletedProcess[str]:
    """`gateway allowlist check --live` on the serving gateway's store, its MX hosts at port
    `mx_port` on 127.0.0.1 (where the rig's MX names resolve)."""
    config = live.gateway.proc.config
    document = tomllib.loads(config.read_text())
    document["delivery"] = {
        "mx_port": mx_port,
        "ca_file": str(rig.ca_file),
        "allow_private_addresses": True,
    }
    probing = config.with_name("probe.toml")
    probing.write_text(tomlwrite.tables(document))
    return run_gateway(gateway_script(), "allowlist", "check", "--live", "--config", probing)


def test_allowlist_shows_each_entry_last_probe(page: Page, live: Live, rig: Rig) -> None:
    sign_in(page, live, "alice", "/allowlist")
    secure = page.locator("tr[data-domain='secure.test'] td.probe")
    expect(secure).to_have_text("never probed")

    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    leaf = rig.ca.issue(("mx1.secure.test", "mx2.secure.test"), stem="browser-probe")
    tls.load_cert_chain(leaf.cert_file, leaf.key_file)
    mx = Upstream(port=free_port(), tls=tls, name="mx1.secure.test").start()
    try:
        result = _probe_allowlist(rig, live, mx.port)
    finally:
        mx.close()
    assert result.returncode == 1, result.stdout + result.stderr  # the rig has insecure entries

    page.reload()
    expect(secure.locator(".badge")).to_have_text("secure")
    expect(secure).to_contain_text("2 of 2 MX host(s) met the domain's policy")
    dane = page.locator("tr[data-domain='dane.test'] td.probe")
    expect(dane.locator(".badge")).to_have_text("not secure")
    expect(dane).to_contain_text("certificate matches none of its 1 usable TLSA record(s)")
    nosts = page.locator("tr[data-domain='nosts.test'] td.probe")
    expect(nosts).to_contain_text("the DNS posture is not-secure (sts-no-record)")
    shot(page, "allowlist-probed", full_page=True)


def test_metrics_and_health(page: Page, live: Live) -> None:
    assert page.request.get(live.url("/healthz")).text() == "ok\n"
    anonymous = page.request.get(live.url("/metrics"), max_redirects=0)
    assert anonymous.status == 303
    scraped = page.request.get(
        live.url("/metrics"), headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
    )
    assert scraped.status == 200
    body = scraped.text()
    assert re.search(r'gateway_messages_total\{outcome="held"\} [5-9]', body), body
    assert "gateway_holds_awaiting_review" in body
    assert "gateway_posture_check_seconds_bucket" in body
    assert 'gateway_review_decisions_total{decision="escalated"} 2.0' in body
