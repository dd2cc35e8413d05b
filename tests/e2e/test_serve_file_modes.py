"""What the gateway leaves on disk is its own: every file 0600, every folder 0700, whatever the
umask it was started under (the hold store names senders, recipients and rationales; the
accounts hold password hashes; the keys are keys)."""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rig.cli import clean_env, gateway_script
from rig.gatewayproc import Gateway, message
from rig.ports import LOOPBACK, free_port

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery staple"
RECIPIENTS = ["officer@nosts.test", "colleague@secure.test"]


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    """Files made by this process and its children (the gateway) under ``mask``."""
    before = os.umask(mask)
    try:
        yield
    finally:
        os.umask(before)


def cli(config: Path, *args: str, stdin: str = "") -> str:
    done = subprocess.run(
        [str(gateway_script()), *args, "--config", str(config)],
        input=stdin,
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def modes(top: Path) -> dict[str, str]:
    """Every path under ``top`` (and ``top``) that is not private, with its mode."""
    wide = {}
    for path in [top, *top.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        private = 0o700 if path.is_dir() else 0o600
        if mode != private:
            wide[str(path.relative_to(top.parent))] = oct(mode)
    return wide


@pytest.mark.parametrize("mask", [0o022, 0o000], ids=["umask-022", "umask-000"])
def test_serve_and_the_command_line_write_only_private_files(
    serve: Callable[..., Gateway], tmp_path: Path, mask: int
) -> None:
    with umask(mask):
        # The data directory is made by the test, under the same umask, before the start.
        gw = serve(
            web={"enabled": True, "listen": f"{LOOPBACK}:{free_port()}"},
            smtp={"workers": 2},
        )
        for _ in range(2):
            assert gw.send("head@school.test", RECIPIENTS, message(to=RECIPIENTS)).code == 250
        gw.wait_relayed(2)
        assert len(gw.holds()) == 2
        gw.wait_notices(1)
        cli(gw.proc.config, "users", "add", "jo", "--role", "admin", stdin=PASSWORD + "\n")
        cli(gw.proc.config, "held", "list")
        cli(gw.proc.config, "sts-cache", "list")
        # While it runs: SQLite's -wal and -shm files are there too.
        running = modes(gw.data_dir)
        side_files = sorted(p.name for p in gw.data_dir.glob("*-wal"))
        assert gw.proc.stop() == 0

        # The command line on its own, into a data directory nobody has made yet.
        fresh = tmp_path / "alone"
        fresh.mkdir()
        config = fresh / "gateway.toml"
        config.write_text('[store]\ndata_dir = "var/lib/gateway"\n[allowlist]\npaths = []\n')
        cli(config, "users", "add", "sam", stdin=PASSWORD + "\n")
        cli(config, "held", "list")
        cli(config, "sts-cache", "list")
        cli(config, "audit", "verify")

    assert running == {}
    assert "held.sqlite3-wal" in side_files
    written = {p.name for p in gw.data_dir.iterdir()}
    made = ["held.sqlite3", "users.sqlite3", "sts-cache.sqlite3", "store.key", "web.key"]
    for name in [*made, "sts-locks"]:
        assert name in written, sorted(written)
    assert gw.held_bodies()
    assert list((gw.data_dir / "sts-locks").iterdir())
    assert modes(gw.data_dir) == {}
    assert modes(fresh / "var") == {}
