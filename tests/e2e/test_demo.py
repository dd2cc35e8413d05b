"""The README's "Five minutes with the gateway", as a newcomer follows it: `make demo`, the
demo's gateway, a flagged message to a secure and an insecure recipient, then the web UI at
http://127.0.0.1:8025/ with the account and password the demo printed.

The demo's ports are the README's own (10025, 10026, 10027, 8025): when something else holds
one, such as a developer's `make demo`, the test is skipped rather than fight it.
"""

from __future__ import annotations

import queue
import re
import signal
import smtplib
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rig.cli import clean_env, gateway_script

ROOT = Path(__file__).resolve().parents[2]
PORTS = [("127.0.0.1", 10025), ("127.0.0.1", 10026), ("127.0.0.1", 8025)]
PORTS += [("127.0.0.21", 10027), ("127.0.0.22", 10027)]
WAIT = 120.0
MESSAGE = b"Subject: [SECURE] referral for J\r\nFrom: teacher@school.test\r\n\r\nNotes about J.\r\n"


class Lines:
    """A process's stdout, line by line, waited on with a deadline."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            args, cwd=ROOT, env=clean_env(env), stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        self.seen: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def wait_for(self, pattern: str) -> re.Match[str]:
        while True:
            try:
                line = self._lines.get(timeout=WAIT)
            except queue.Empty:
                line = None
            if line is None:
                pytest.fail(f"never printed {pattern!r}:\n" + "\n".join(self.seen))
            self.seen.append(line)
            found = re.search(pattern, line)
            if found:
                return found

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=10)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


def _taken(host: str, port: int) -> bool:
    with socket.socket() as probe:
        # As the servers bind: a connection of an earlier run in TIME_WAIT is no clash.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Lines]:
    taken = [f"{h}:{p}" for h, p in PORTS if _taken(h, p)]
    if taken:
        pytest.skip(f"the demo's ports are in use: {', '.join(taken)}")
    running = Lines([sys.executable, "-m", "scripts.demo"], {"GATEWAY_DEMO_DIR": str(tmp_path)})
    try:
        yield running
    finally:
        running.stop()


def test_the_walkthrough_reaches_the_web_ui(demo: Lines) -> None:
    config = demo.wait_for(r"next, in another terminal: \.venv/bin/gateway serve --config (\S+)")
    web = demo.wait_for(r"then the web UI: (http://127\.0\.0\.1:8025/) \(sign in as (\w+), "
                        r"password (\S+)\)")  # fmt: skip
    gateway = Lines([str(gateway_script()), "serve", "--config", config[1]], {})
    try:
        gateway.wait_for(r"\blistening\b.*smtp=127\.0\.0\.1:10025")
        with smtplib.SMTP("127.0.0.1", 10025, timeout=30) as smtp:
            smtp.ehlo("school.test")
            smtp.mail("teacher@school.test")
            smtp.rcpt("a@secure.test")
            smtp.rcpt("b@nosts.test")
            code, reply = smtp.data(MESSAGE)
        assert code == 250, reply
        hold = re.search(rb"held for review as (\w+)", reply)
        assert hold is not None, reply
        hold_id = hold[1].decode()
        demo.wait_for(r"=== upstream received from teacher@school.test for \['a@secure.test'\]")
        demo.wait_for(rf"Open it: http://127\.0\.0\.1:8025/held/{hold_id}")

        with httpx.Client(base_url=web[1], timeout=30) as browser:
            form = browser.get("/signin")
            csrf = form.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
            signed_in = browser.post(
                "/signin", data={"name": web[2], "password": web[3], "csrf": csrf}
            )
            assert signed_in.status_code == 303, signed_in.text
            page = browser.get(f"/held/{hold_id}")
        assert page.status_code == 200
        assert "[SECURE] referral for J" in page.text
        assert "b@nosts.test" in page.text
    finally:
        gateway.stop()
