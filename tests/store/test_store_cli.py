"""`gateway store migrate|status|copy` and a node's start on PostgreSQL, as an operator runs
them: the console script against the rig's PostgreSQL, the DSN (and its password) only in the
environment, never in what the commands print."""

from __future__ import annotations

import json
import select
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest

from gateway.store.postgres.tables import SCHEMA_VERSION
from rig.cli import clean_env, gateway_script, run_gateway
from rig.ports import free_port
from rig.postgres import PASSWORD, Postgres, bindir
from store.pginstall import AUDIT_KEY, HOLDS, make_install

START_TIMEOUT = 60
KEYS = f"""
[store]
key = "{bytes(range(32)).hex()}"

[audit]
key = "{AUDIT_KEY.hex()}"
"""


def write_config(folder: Path, backend: str, store: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "gateway.toml"
    listen = f"127.0.0.1:{free_port()}"
    text = KEYS.replace(
        "[store]\n", f'[store]\ndata_dir = "{folder / "data"}"\nbackend = "{backend}"\n{store}'
    )
    web = "[web]\nenabled = false\n"
    config.write_text(f'[smtp]\nlisten = "{listen}"\n{text}{web}', encoding="utf-8")
    return config


def gateway(config: Path, dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    result = run_gateway(
        gateway_script(), "--config", config, *args, env={"GATEWAY_STORE_DSN": dsn}
    )
    assert PASSWORD not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result


def test_on_sqlite_migrate_says_it_migrates_itself_and_status_counts(tmp_path: Path) -> None:
    config = write_config(tmp_path, "sqlite")
    migrated = gateway(config, "", "store", "migrate")
    assert migrated.returncode == 0
    assert "brought up to date when it is opened" in migrated.stdout
    status = gateway(config, "", "store", "status")
    assert status.returncode == 0, status.stderr
    assert "backend: sqlite" in status.stdout
    assert "holds: 0 (0 waiting for review)" in status.stdout


def test_on_postgresql_a_node_refuses_to_start_until_migrated(tmp_path: Path, pg_dsn: str) -> None:
    config = write_config(tmp_path, "postgresql")
    refused = gateway(config, pg_dsn, "serve")
    assert refused.returncode == 2
    assert "gateway store migrate" in refused.stderr
    assert "dbname=" in refused.stdout  # the log names the database, not the password
    status = gateway(config, pg_dsn, "store", "status")
    assert status.returncode == 1
    assert f"schema: version 0 (this release knows {SCHEMA_VERSION})" in status.stdout
    first = gateway(config, pg_dsn, "store", "migrate")
    migrated = f"schema at version {SCHEMA_VERSION} (was 0)"
    assert (first.returncode, first.stdout.strip()) == (0, migrated)
    again = gateway(config, pg_dsn, "store", "migrate")
    assert again.stdout.strip() == f"schema at version {SCHEMA_VERSION} (was {SCHEMA_VERSION})"
    status = gateway(config, pg_dsn, "store", "status")
    assert status.returncode == 0, status.stderr
    assert "backend: postgresql" in status.stdout
    assert "audit entries: 0" in status.stdout
    started = serve_until_listening(config, pg_dsn)
    opened = next(json.loads(line) for line in started if "store opened" in line)
    assert opened["store"].startswith("postgresql dbname=")


def serve_until_listening(config: Path, dsn: str) -> list[str]:
    """`gateway serve`'s log up to its "listening" line; then it is stopped with SIGTERM."""
    process = subprocess.Popen(
        [str(gateway_script()), "--config", str(config), "serve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=clean_env({"GATEWAY_STORE_DSN": dsn}),
    )
    lines: list[str] = []
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT
        while not any("listening" in line for line in lines):
            ready, _, _ = select.select([process.stdout], [], [], deadline - time.monotonic())
            line = process.stdout.readline() if ready else ""
            assert line, "gateway serve stopped or went quiet:\n" + "".join(lines)
            lines.append(line)
    finally:
        process.send_signal(signal.SIGTERM)
        rest, _ = process.communicate(timeout=START_TIMEOUT)
    assert process.returncode == 0
    assert PASSWORD not in "".join(lines) + rest
    return lines


def test_a_node_whose_database_is_not_there_stops_with_one_line(tmp_path: Path) -> None:
    timeouts = 'connect_timeout = "1s"\nstatement_timeout = "1s"\n'
    config = write_config(tmp_path, "postgresql", timeouts)
    dsn = f"postgresql://gateway:{PASSWORD}@127.0.0.1:{free_port()}/gateway"
    refused = gateway(config, dsn, "serve")
    assert refused.returncode == 1
    [line] = refused.stderr.strip().splitlines()[-1:]
    assert line.startswith("gateway: cannot start: the store cannot be reached")
    assert "store cannot be used" in refused.stdout  # logged, with where: never silent


@pytest.mark.parametrize("through", ["environment", "--to"])
async def test_copy_moves_the_install_and_the_nodes_serve_it(
    tmp_path: Path, pg_dsn: str, through: str
) -> None:
    single = write_config(tmp_path / "single", "sqlite")
    await make_install(tmp_path / "single" / "data")
    args = ["store", "copy"] + (["--to", pg_dsn] if through == "--to" else [])
    copied = gateway(single, pg_dsn if through == "environment" else "", *args)
    assert copied.returncode == 0, copied.stderr
    assert "audit trail: 11 entries copied, the chain verified under the audit key" in (
        copied.stdout
    )
    assert f"holds: {HOLDS} in the install, {HOLDS} copied now" in copied.stdout
    again = gateway(single, pg_dsn, "store", "copy")
    assert again.returncode == 0
    assert f"holds: {HOLDS} in the install, 0 copied now, {HOLDS} in the database" in again.stdout

    node = write_config(tmp_path / "node", "postgresql")
    status = gateway(node, pg_dsn, "store", "status")
    assert f"holds: {HOLDS} ({HOLDS} waiting for review)" in status.stdout
    assert "audit entries: 11" in status.stdout
    listed = gateway(node, pg_dsn, "held", "list")
    assert listed.returncode == 0, listed.stderr
    assert "a3@partner.test" in listed.stdout
    verified = gateway(node, pg_dsn, "audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr


async def test_copy_into_a_database_other_nodes_use_is_refused(tmp_path: Path, pg_dsn: str) -> None:
    results = []
    for name in ("one", "two"):
        config = write_config(tmp_path / name, "sqlite")
        await make_install(tmp_path / name / "data", holds=1)
        results.append(gateway(config, pg_dsn, "store", "copy"))
    assert results[0].returncode == 0
    assert results[1].returncode == 1
    assert "already used by other nodes" in results[1].stderr


def pg_tool(name: str, *args: str) -> None:
    """pg_dump or pg_restore of the rig's PostgreSQL release, as the operator runs them."""
    done = subprocess.run(
        [str(bindir() / name), *args], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr


async def test_on_postgresql_backup_writes_the_manifest_and_restore_checks_a_pg_restore(
    tmp_path: Path, postgres_server: Postgres, pg_dsn: str
) -> None:
    """The documented order: `gateway store backup DIR`, then pg_dump -Fc (mail may flow in
    between: the dump holds the recorded head and more); pg_restore into a new database, then
    `gateway store restore DIR` checks the keys, the chain, the head and every body."""
    single = write_config(tmp_path / "single", "sqlite")
    await make_install(tmp_path / "single" / "data")
    assert gateway(single, pg_dsn, "store", "copy").returncode == 0
    node = write_config(tmp_path / "node", "postgresql")
    backup = tmp_path / "backup"
    taken = gateway(node, pg_dsn, "store", "backup", str(backup))
    assert taken.returncode == 0, taken.stderr
    assert "pg_dump -Fc" in taken.stdout
    assert "the keys are NOT in the backup" in taken.stdout
    found = json.loads((backup / "manifest.json").read_text())
    assert found["backend"] == "postgresql"
    assert found["audit_head"]["seq"] == 11
    assert found["counts"]["holds"] == HOLDS
    assert stat.S_IMODE((backup / "manifest.json").stat().st_mode) == 0o600

    # The trail goes on after the manifest (a reviewer opens a hold), then the dump is taken.
    listed = gateway(node, pg_dsn, "held", "list", "--json")
    first = json.loads(listed.stdout)[-1]["id"]
    assert gateway(node, pg_dsn, "held", "show", first).returncode == 0
    dump = backup / "gateway.pgdump"
    pg_tool("pg_dump", "-Fc", "--file", str(dump), pg_dsn)

    restored = postgres_server.dsn(postgres_server.create_database("restored"))
    pg_tool("pg_restore", "--no-owner", "--dbname", restored, str(dump))
    checked = gateway(node, restored, "store", "restore", str(backup))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "audit trail: 12 entries verified, the backup's head is there" in checked.stdout
    assert f"holds: {HOLDS - 1} bodies opened with the configured keys, 0 not" in checked.stdout
    assert gateway(node, restored, "audit", "verify").returncode == 0

    # A database that is not the one backed up (here: a new, empty one) is refused.
    empty = postgres_server.dsn(postgres_server.create_database("empty"))
    assert gateway(node, empty, "store", "migrate").returncode == 0
    refused = gateway(node, empty, "store", "restore", str(backup))
    assert refused.returncode == 1
    assert "the backup's audit head 11 is not there" in refused.stderr
    # And so is a configuration whose store key is not the one the bodies are sealed under.
    other_key = node.read_text().replace(bytes(range(32)).hex(), "ab" * 32)
    (tmp_path / "node" / "gateway.toml").write_text(other_key)
    wrong = gateway(node, restored, "store", "restore", str(backup))
    assert wrong.returncode == 1
    assert "sealed under store key" in wrong.stderr
