"""A gateway started while another holds its port (`make run` left running, then the demo's
gateway) says in one line which setting's address is taken and what to stop, and exits 1."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from rig.cli import clean_env, gateway_script
from rig.ports import LOOPBACK, free_port

EXIT_FINDING = 1


@pytest.mark.parametrize(
    ("command", "taken", "key"),
    [(["serve"], "smtp", "[smtp] listen"), (["web"], "web", "[web] listen")],
)
def test_a_taken_port_names_its_setting(
    command: list[str], taken: str, key: str, tmp_path: Path
) -> None:
    ports = {"smtp": free_port(), "web": free_port()}
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'[smtp]\nlisten = "{LOOPBACK}:{ports["smtp"]}"\n'
        f'[web]\nlisten = "{LOOPBACK}:{ports["web"]}"\n'
        '[store]\ndata_dir = "data"\n[allowlist]\npaths = []\n'
    )
    with socket.socket() as other:
        other.bind((LOOPBACK, ports[taken]))
        other.listen()
        result = subprocess.run(
            [str(gateway_script()), *command, "--config", str(config)],
            capture_output=True,
            text=True,
            env=clean_env(),
            timeout=60,
            check=False,
        )
    assert result.returncode == EXIT_FINDING, result.stderr
    assert result.stderr.splitlines()[-1] == (
        f"gateway: cannot start: {LOOPBACK}:{ports[taken]} ({key}) is already in use: stop the"
        " program listening there first (another gateway: `make run`, or an earlier"
        " `gateway serve`?)"
    )
