"""`gateway web` on its own re-reads the allowlist on SIGHUP, and its allowlist page says
since when the list in force was read and from which files."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from rig import Rig
from rig.cli import clean_env, gateway_script
from rig.ports import LOOPBACK, free_port
from web.site import PASSWORD, token

START_TIMEOUT = 30.0


class WebProcess:
    """`gateway web --config CONFIG`, its JSON log in a file to read while it runs."""

    def __init__(self, config: Path, log: Path) -> None:
        self.log = log
        with log.open("wb") as out:
            self.popen = subprocess.Popen(
                [str(gateway_script()), "web", "--config", str(config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=clean_env(),
            )

    def events(self, name: str) -> list[dict[str, Any]]:
        found = []
        for line in self.log.read_text().splitlines():
            if line.startswith("{") and (entry := json.loads(line)).get("event") == name:
                found.append(entry)
        return found

    def wait_event(self, name: str, count: int = 1) -> list[dict[str, Any]]:
        deadline = time.monotonic() + START_TIMEOUT
        while len(found := self.events(name)) < count:
            assert self.popen.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, f"no {name!r}\n{self.log.read_text()}"
            time.sleep(0.05)
        return found


@pytest.fixture
def web_alone(rig: Rig, tmp_path: Path) -> Iterator[tuple[WebProcess, str, Path]]:
    allowlist = tmp_path / "lists" / "partners.toml"
    allowlist.parent.mkdir()
    allowlist.write_text('[[domain]]\nname = "secure.test"\n')
    port = free_port()
    config = rig.write_config(
        tmp_path / "gateway.toml",
        allowlist={"paths": [str(allowlist)]},
        web={"enabled": True, "listen": f"{LOOPBACK}:{port}"},
        store={"data_dir": str(tmp_path / "data")},
    )
    added = subprocess.run(
        [str(gateway_script()), "users", "add", "alice", "--role", "reviewer", "--config", config],
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
        check=False,
    )
    assert added.returncode == 0, added.stderr
    web = WebProcess(config, tmp_path / "web.log")
    try:
        web.wait_event("web UI listening")
        yield web, f"http://{LOOPBACK}:{port}", allowlist
    finally:
        web.popen.send_signal(signal.SIGTERM)
        assert web.popen.wait(20) == 0, web.log.read_text()


def _allowlist_page(base: str) -> str:
    return _signed_in_get(base, "/allowlist")


def _domain_check(base: str, domain: str) -> str:
    return _signed_in_get(base, f"/allowlist/check?domain={domain}")


def _signed_in_get(base: str, path: str) -> str:
    with httpx.Client(base_url=base, timeout=30) as client:
        form = client.get("/signin")
        signed_in = client.post(
            "/signin",
            data={"name": "alice", "password": PASSWORD, "csrf": token(form), "next": "/"},
        )
        assert signed_in.status_code == 303, signed_in.text
        page = client.get(path)
        assert page.status_code == 200
        return page.text


def test_gateway_web_reloads_the_allowlist_on_sighup_and_the_page_says_when(
    web_alone: tuple[WebProcess, str, Path],
) -> None:
    web, base, allowlist = web_alone
    checked = _domain_check(base, "multistring.test")
    assert "not on the allowlist" in checked
    before = _allowlist_page(base)
    assert 'data-domain="secure.test"' in before
    assert 'data-domain="multistring.test"' not in before
    assert f"read from <code>{allowlist}</code>: 1 entry." in before
    assert "In force since" in before

    with allowlist.open("a") as file:
        file.write('\n[[domain]]\nname = "multistring.test"\n')
    web.popen.send_signal(signal.SIGHUP)
    [reloaded] = web.wait_event("allowlist reloaded")
    assert reloaded["entries"] == 2
    after = _allowlist_page(base)
    assert 'data-domain="multistring.test"' in after
    # A domain checked a moment ago is matched against the new list, not shown from before.
    assert "not on the allowlist" not in _domain_check(base, "multistring.test")
    assert f"read from <code>{allowlist}</code>: 2 entries." in after
    assert web.popen.poll() is None
