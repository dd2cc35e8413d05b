"""`gateway store migrate|status|copy` and a node's start on PostgreSQL, as an operator runs
them: the console script against the rig's PostgreSQL, the DSN (and its password) only in the
environment, never in what the commands print."""

from __future__ import annotations

import json
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest

from gateway.store.postgres.tables import SCHEMA_VERSION
from rig.cli import clean_env, gateway_script, run_gateway
from rig.ports import free_port
from rig.postgres import PASSWORD
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
