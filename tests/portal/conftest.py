"""The portal in a real browser: Debian's Chromium, headless, driven by Playwright, against
`gateway serve` with [portal] on, started for the rig with a recording upstream. Holds are
made the real way, by mail over SMTP; the codes are read from the emails the upstream got."""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from portal import links
from rig.cli import gateway_script, run_gateway
from rig.gatewayproc import Gateway, start_gateway
from rig.plugin import rig
from rig.ports import LOOPBACK, free_port
from rig.rig import Rig
from rig.upstream import Message, Upstream

__all__ = ["browser", "browser_phone", "live", "rig"]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
HOLD_ID = re.compile(r"held for review as ([0-9a-f]+)")
LINK = re.compile(r"https?://[^/\s]+(/m/[A-Za-z0-9_-]{43})(?![A-Za-z0-9_-])")
CODE = re.compile(r"^ +(\d{4} \d{4}) *$", re.MULTILINE)
ORGANISATION = "Oak Primary School"


@dataclass
class Live:
    gateway: Gateway
    base: str
    made: int = 0
    tokens: dict[str, str] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return self.base + path

    def hold(self, sender: str, to: str, raw: bytes) -> str:
        reply = self.gateway.send(sender, [to], raw)
        assert reply.code == 250, reply
        found = HOLD_ID.search(reply.text)
        assert found, reply
        return found.group(1)

    def link(
        self, sender: str, to: str, raw: bytes, lifetime: float | None = None
    ) -> tuple[str, str]:
        """Hold ``raw`` and send it by secure link, as a reviewer does (`gateway held
        send-link`), the token taken from the link email the upstream got: (the link's path,
        its id). With ``lifetime``, the link is made through the store instead, to expire."""
        hold_id = self.hold(sender, to, raw)
        if lifetime is not None:
            made = links.send_links(self.gateway.proc.config, hold_id, lifetime)[to]
            return f"/m/{made['token']}", made["link"]
        config = self.gateway.proc.config
        reason = "the family's provider is not secure"
        done = run_gateway(
            gateway_script(),
            "held",
            "send-link",
            hold_id,
            "--reason",
            reason,
            "--by",
            "alice",
            "--config",
            config,
        )
        assert done.returncode == 0, done.stderr
        found = self.gateway.upstream.wait_for(
            1,
            15,
            where=lambda m: (
                to in m.rcpt_tos and LINK.search(text_of(m)) is not None and hold_id in text_of(m)
            ),
        )
        assert found, f"no link email to {to}\n{self.gateway.proc.output()}"
        match = LINK.search(text_of(found[0]))
        assert match
        path = match.group(1)
        [(link_id,)] = self.gateway.query(
            "SELECT id FROM secure_links WHERE hold_id = ?", (hold_id,)
        )
        return path, str(link_id)

    def revoke(self, link_id: str) -> None:
        config = self.gateway.proc.config
        done = run_gateway(
            gateway_script(),
            "held",
            "revoke-link",
            link_id,
            "--reason",
            "sent to the wrong family",
            "--by",
            "alice",
            "--config",
            config,
        )
        assert done.returncode == 0, done.stderr

    def codes(self, recipient: str) -> list[Message]:
        return [m for m in self.gateway.upstream.messages if _is_code(m, recipient)]

    def wait_code(self, recipient: str, count: int = 1) -> str:
        """The code in the ``count``-th code email to ``recipient``, once it has arrived."""
        upstream = self.gateway.upstream
        found = upstream.wait_for(count, 15, where=lambda m: _is_code(m, recipient))
        assert len(found) >= count, f"no code email for {recipient}\n{self.gateway.proc.output()}"
        match = CODE.search(text_of(found[count - 1]))
        assert match
        return match.group(1)

    def events(self, hold_id: str) -> list[str]:
        rows = self.gateway.query(
            "SELECT event FROM audit WHERE hold_id = ? ORDER BY seq", (hold_id,)
        )
        return [str(row[0]) for row in rows]

    def audit_text(self) -> str:
        return "\n".join(str(r) for r in self.gateway.query("SELECT * FROM audit", ()))


def text_of(message: Message) -> str:
    """The email as its reader sees it: headers and decoded text body."""
    parsed = email.message_from_bytes(message.data, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    body = parsed.get_body(("plain",))
    text = body.get_content() if body is not None else ""
    return f"{parsed}\n{text}"


def _is_code(message: Message, recipient: str) -> bool:
    return recipient in message.rcpt_tos and CODE.search(text_of(message)) is not None


@pytest.fixture(scope="module")
def live(rig: Rig, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    upstream = Upstream().start()
    port = free_port()
    base = f"http://{LOOPBACK}:{port}"
    gateway = start_gateway(
        rig,
        tmp_path_factory.mktemp("portal-live"),
        upstream,
        portal={"enabled": True, "listen": f"{LOOPBACK}:{port}", "public_url": base},
        web={"enabled": True, "listen": f"{LOOPBACK}:{free_port()}"},
        notify={"organisation": ORGANISATION},
        review={"reviewers": ["dsl@school.test"], "sweep_interval": "1s"},
    )
    try:
        _wait_listening(base, gateway)
        yield Live(gateway, base)
    finally:
        status = gateway.proc.stop()
        upstream.close()
        assert status == 0, f"gateway serve exited {status}\n{gateway.proc.output()}"


def _wait_listening(base: str, gateway: Gateway) -> None:
    """The portal starts after the SMTP port: wait for its log line, not for time."""
    gateway.proc.wait_event("portal listening", timeout=20)


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


PHONE = {"width": 390, "height": 844}


@pytest.fixture
def browser_phone(browser: Browser, live: Live) -> Iterator[Page]:
    """A page the size of a phone's screen, touch and all."""
    ctx = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
    try:
        yield ctx.new_page()
    finally:
        ctx.close()


@dataclass
class Watch:
    """What a page did that it never should: dialogs, requests elsewhere."""

    dialogs: list[str] = field(default_factory=list)
    foreign_requests: list[str] = field(default_factory=list)


@pytest.fixture
def context(browser: Browser, live: Live) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport={"width": 1100, "height": 820}, accept_downloads=True)
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
        "request",
        lambda r: None if r.url.startswith(live.base) else watch.foreign_requests.append(r.url),
    )
    return page, watch


@pytest.fixture
def page(watched: tuple[Page, Watch]) -> Page:
    return watched[0]
