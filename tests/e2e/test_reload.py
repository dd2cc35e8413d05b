"""Reloading a running `gateway serve` without a restart: `gateway reload` (SIGHUP through the
pid file in the data directory) re-reads the allowlist files in the leader and every worker.

A newly listed domain is in force for the next message; a broken edit keeps the whole previous
list in force and the log names the file and the line; `gateway reload` with nothing running,
or with a pid file left behind by a crash, says so, signals nothing and exits 1.
"""

from __future__ import annotations

import shutil
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from rig import Rig
from rig.cli import GatewayRunner
from rig.gatewayproc import Gateway, message

pytestmark = pytest.mark.e2e

SENDER = "head@school.test"
NEWLY_LISTED = "pat@unlisted.test"  # secure transport, not on the rig's allowlist
LISTED = "colleague@secure.test"
EXIT_FINDING = 1
NEW_ENTRY = '\n[[domain]]\nname = "unlisted.test"\nnote = "added while running"\n'


def _own_allowlist(rig: Rig, folder: Path) -> Path:
    """A copy of the rig's allowlist that this test may edit."""
    assert rig.allowlist_file is not None
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copyfile(rig.allowlist_file, folder / "partners.toml"))


def _serve_with(serve: Callable[..., Gateway], allowlist: Path, workers: int = 1) -> Gateway:
    return serve(allowlist={"paths": [str(allowlist)]}, smtp={"workers": workers})


def _reload(gateway: GatewayRunner, gw: Gateway) -> subprocess.CompletedProcess[str]:
    done = gateway("reload", "--config", gw.proc.config)
    assert done.returncode == 0, done.stderr
    assert f"sent SIGHUP to gateway serve (pid {gw.proc.pid})" in done.stdout
    return done


@pytest.mark.parametrize("workers", [1, 2])
def test_a_domain_added_to_the_allowlist_is_in_force_after_gateway_reload(
    serve: Callable[..., Gateway], rig: Rig, tmp_path: Path, gateway: GatewayRunner, workers: int
) -> None:
    allowlist = _own_allowlist(rig, tmp_path / "lists")
    gw = _serve_with(serve, allowlist, workers)
    loaded = gw.proc.events("allowlist loaded")[0]  # one line per worker
    before = message(to=[NEWLY_LISTED])
    reply = gw.send(SENDER, [NEWLY_LISTED], before)
    assert reply.code == 250, reply
    assert "held for review" in reply.text, reply

    with allowlist.open("a") as file:
        file.write(NEW_ENTRY)
    _reload(gateway, gw)
    reloaded = gw.proc.wait_event("allowlist reloaded", count=workers)
    assert {e["entries"] for e in reloaded} == {loaded["entries"] + 1}
    assert all(e["files"] == [str(allowlist)] for e in reloaded)

    # New sessions go to any worker (SO_REUSEPORT): every one decides with the new list.
    for _ in range(2 * workers):
        after = message(to=[NEWLY_LISTED])
        reply = gw.send(SENDER, [NEWLY_LISTED], after)
        assert reply.code == 250, reply
        assert "relayed" in reply.text, reply
        gw.wait_relayed(1, of=after)
    assert gw.proc.running


def test_a_session_in_progress_sends_its_next_message_with_the_new_list(
    serve: Callable[..., Gateway], rig: Rig, tmp_path: Path, gateway: GatewayRunner
) -> None:
    allowlist = _own_allowlist(rig, tmp_path / "lists")
    gw = _serve_with(serve, allowlist)
    with gw.smtp() as client:
        first = message(to=[NEWLY_LISTED])
        client.sendmail(SENDER, [NEWLY_LISTED], first)
        with allowlist.open("a") as file:
            file.write(NEW_ENTRY)
        _reload(gateway, gw)
        gw.proc.wait_event("allowlist reloaded")
        second = message(to=[NEWLY_LISTED])
        client.sendmail(SENDER, [NEWLY_LISTED], second)  # the same session, not dropped
    assert len(gw.holds(of=first)) == 1
    gw.wait_relayed(1, of=second)


BROKEN_EDITS = [
    pytest.param('\n[[domain]]\nname = "unterminated\n', "not valid TOML", id="toml-error"),
    pytest.param('\n[[domain]]\nname = "no_dots"\n', "invalid domain", id="bad-entry"),
]


@pytest.mark.parametrize(("edit", "problem"), BROKEN_EDITS)
def test_a_broken_edit_keeps_the_previous_list_and_the_log_names_file_and_line(
    serve: Callable[..., Gateway],
    rig: Rig,
    tmp_path: Path,
    gateway: GatewayRunner,
    edit: str,
    problem: str,
) -> None:
    allowlist = _own_allowlist(rig, tmp_path / "lists")
    gw = _serve_with(serve, allowlist)
    lines_before = allowlist.read_text().count("\n")
    with allowlist.open("a") as file:
        file.write(NEW_ENTRY + edit)
    _reload(gateway, gw)
    [failed] = gw.proc.wait_event("allowlist reload failed")
    assert failed["level"] == "error"
    assert failed["file"] == str(allowlist)
    # The edit's third line (after the entry that was fine) holds the name to fix.
    assert failed["line"] == lines_before + NEW_ENTRY.count("\n") + 3, failed
    assert problem in failed["problem"]
    assert gw.proc.events("allowlist reloaded") == []

    # The old list is in force: a listed domain is still relayed, the half-made change
    # (unlisted.test, fine on its own) is not.
    listed = message(to=[LISTED])
    assert gw.send(SENDER, [LISTED], listed).code == 250
    gw.wait_relayed(1, of=listed)
    unlisted = message(to=[NEWLY_LISTED])
    assert "held for review" in gw.send(SENDER, [NEWLY_LISTED], unlisted).text


def test_a_reload_that_finds_no_allowlist_file_keeps_the_previous_list(
    serve: Callable[..., Gateway], rig: Rig, tmp_path: Path, gateway: GatewayRunner
) -> None:
    # The folder was moved or the file renamed: an empty list would hold every flagged
    # message with "not on the list", and nobody would know why. The reload is refused like
    # any other problem, and the log says which pattern found nothing.
    allowlist = _own_allowlist(rig, tmp_path / "lists")
    gw = serve(allowlist={"paths": [str(tmp_path / "lists" / "*.toml")]})
    loaded = gw.proc.events("allowlist loaded")[0]
    allowlist.rename(tmp_path / "partners.toml.moved")
    _reload(gateway, gw)
    [failed] = gw.proc.wait_event("allowlist reload failed")
    assert failed["level"] == "error"
    assert failed["file"] == str(tmp_path / "lists" / "*.toml")
    assert failed["problem"] == "[allowlist] paths: matches no file"
    assert failed["kept_entries"] == loaded["entries"]
    listed = message(to=[LISTED])
    assert gw.send(SENDER, [LISTED], listed).code == 250
    gw.wait_relayed(1, of=listed)


def test_the_pid_file_is_private_and_goes_at_a_clean_stop(gw: Gateway) -> None:
    pid_file = gw.data_dir / "gateway.pid"
    assert pid_file.read_text().strip() == str(gw.proc.pid)
    assert stat.S_IMODE(pid_file.stat().st_mode) == 0o600
    assert gw.proc.stop() == 0
    assert not pid_file.exists()


def _config(rig: Rig, tmp_path: Path) -> tuple[Path, Path]:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    return rig.write_config(tmp_path / "gateway.toml", store={"data_dir": data_dir}), data_dir


def test_gateway_reload_with_nothing_running_exits_1(
    rig: Rig, tmp_path: Path, gateway: GatewayRunner
) -> None:
    config, _ = _config(rig, tmp_path)
    done = gateway("reload", "--config", config)
    assert done.returncode == EXIT_FINDING
    assert "no gateway serve is running for this configuration" in done.stderr


def test_a_stale_pid_file_is_reported_and_its_process_is_not_signalled(
    rig: Rig, tmp_path: Path, gateway: GatewayRunner
) -> None:
    config, data_dir = _config(rig, tmp_path)
    # A crash left the pid file, and the pid now belongs to another program, one that SIGHUP
    # would kill.
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        (data_dir / "gateway.pid").write_text(f"{bystander.pid}\n")
        done = gateway("reload", "--config", config)
        assert done.returncode == EXIT_FINDING
        assert f"stale pid file {data_dir / 'gateway.pid'}" in done.stderr
        assert "nothing signalled" in done.stderr
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()
