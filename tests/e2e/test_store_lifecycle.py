"""The store's life over years, end to end on the embedded store: `gateway store backup` while
mail flows through `gateway serve`, `gateway store restore` into a new data directory and a
gateway started on it; `gateway store rotate-key` while holds are written, then a start without
the old key."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from rig import Rig
from rig.gatewayproc import HOSTNAME, LOCAL_DOMAIN, Gateway, GatewayProcess, message
from rig.heldcli import INSECURE, REVIEW, SENDER, cli_for, hold_id
from rig.ports import LOOPBACK, free_port
from rig.upstream import Upstream

pytestmark = pytest.mark.e2e
QUIET = {"web": {"enabled": False}, "review": REVIEW}


@contextmanager
def gateway_on(rig: Rig, workdir: Path, data: Path, **store: object) -> Iterator[Gateway]:
    settings: dict[str, object] = {"data_dir": str(data), **store}
    upstream = Upstream().start()
    try:
        # start_gateway's own `store` is a shared database: the [store] table is written here.
        port = free_port()
        config = rig.write_config(
            workdir / "gateway.toml",
            smtp={"listen": f"{LOOPBACK}:{port}", "hostname": HOSTNAME},
            relay={"host": LOOPBACK, "port": upstream.port},
            policy={"local_domains": [LOCAL_DOMAIN]},
            store=settings,
            **QUIET,
        )
        proc = GatewayProcess(config, port, workdir)
        proc.start()
        gw = Gateway(proc, upstream, data)
        try:
            yield gw
        finally:
            assert gw.proc.stop() == 0, gw.proc.output()
    finally:
        upstream.close()


@contextmanager
def mail_flowing(gw: Gateway) -> Iterator[list[str]]:
    """A thread sends flagged mail (each one a new hold) until the block ends; the holds'
    ids. It has made at least one hold when the block starts and after it ends."""
    made: list[str] = []
    stop, started = threading.Event(), threading.Event()

    def send() -> None:
        while not stop.is_set() or len(made) < 2:
            made.append(hold_id(gw.send(SENDER, [INSECURE], message(to=[INSECURE]))))
            started.set()

    thread = threading.Thread(target=send)
    thread.start()
    started.wait(30)
    try:
        yield made
    finally:
        stop.set()
        thread.join(60)


def test_backup_while_mail_flows_restores_into_a_new_data_dir(rig: Rig, tmp_path: Path) -> None:
    data, backup = tmp_path / "data", tmp_path / "backup"
    with gateway_on(rig, tmp_path / "a", data) as gw:
        cli = cli_for(gw)
        with mail_flowing(gw) as made:
            taken = cli.ok("store", "backup", str(backup))
        assert "the keys are NOT in the backup" in taken.stdout
    found = json.loads((backup / "manifest.json").read_text())
    assert found["counts"]["holds"] >= 1
    assert found["audit_head"]["seq"] > 0
    assert (backup.stat().st_mode & 0o777) == 0o700
    for name in found["files"]:
        assert ((backup / name).stat().st_mode & 0o777) == 0o600, name
    key = (data / "store.key").read_bytes().strip()
    assert not any(key in path.read_bytes() for path in backup.rglob("*") if path.is_file())

    # A new disk: the operator puts the keys back (kept elsewhere), then the backup.
    fresh = tmp_path / "fresh"
    fresh.mkdir(mode=0o700)
    for name in ("store.key", "audit.key"):
        shutil.copy2(data / name, fresh / name)
    env = {"GATEWAY_STORE_DATA_DIR": str(fresh)}
    restored = cli.run("store", "restore", str(backup), env=env)
    assert restored.code == 0, str(restored)
    assert "the backup's head is there" in restored.stdout
    assert cli.run("store", "restore", str(backup), env=env).code == 1  # not over a store

    with gateway_on(rig, tmp_path / "b", fresh) as again:
        cli = cli_for(again)
        backed_up = [h["id"] for h in cli.holds()]
        assert len(backed_up) == found["counts"]["holds"]
        assert set(backed_up) <= set(made)
        for hold in backed_up:
            assert "Pupil welfare update" in cli.ok("held", "show", hold).stdout
        assert cli.ok("audit", "verify").code == 0


def test_a_restore_refuses_a_changed_backup(rig: Rig, tmp_path: Path) -> None:
    data, backup = tmp_path / "data", tmp_path / "backup"
    with gateway_on(rig, tmp_path / "a", data) as gw:
        cli = cli_for(gw)
        hold_id(gw.send(SENDER, [INSECURE], message(to=[INSECURE])))
        cli.ok("store", "backup", str(backup))
    body = backup / "held.sqlite3"  # the bodies are rows of it
    body.write_bytes(body.read_bytes()[:-1] + b"\1")
    env = {"GATEWAY_STORE_DATA_DIR": str(tmp_path / "fresh")}
    refused = cli.run("store", "restore", str(backup), env=env)
    assert refused.code == 1, str(refused)
    assert "not what was backed up" in refused.stderr


def test_rotate_key_while_holds_are_written_then_start_without_the_old_key(
    rig: Rig, tmp_path: Path
) -> None:
    data, new_key = tmp_path / "data", tmp_path / "keys" / "store-2027.key"
    with gateway_on(rig, tmp_path / "a", data) as gw:
        cli = cli_for(gw)
        before = [hold_id(gw.send(SENDER, [INSECURE], message(to=[INSECURE]))) for _ in range(3)]
        assert "key id" in cli.ok("store", "new-key", str(new_key)).stdout
    ring = {"key_file": str(new_key), "old_key_files": [str(data / "store.key")]}
    with gateway_on(rig, tmp_path / "b", data, **ring) as gw:
        cli = cli_for(gw)
        with mail_flowing(gw) as during:
            cli.ok("store", "rotate-key")
        done = cli.ok("store", "rotate-key")  # a second run: nothing left to move
        assert "re-sealed 0 bodies" in done.stdout
        assert "no longer needs" in done.stdout
    (data / "store.key").unlink()  # the old key is gone for good
    with gateway_on(rig, tmp_path / "c", data, key_file=str(new_key)) as gw:
        cli = cli_for(gw)
        for hold in before + during:
            assert "Pupil welfare update" in cli.ok("held", "show", hold).stdout
