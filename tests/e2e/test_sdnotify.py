"""Under systemd (`Type=notify`, deploy/gateway.service) `gateway serve` says READY=1 on
$NOTIFY_SOCKET once mail can be accepted, so `systemctl start` returns only then, and
STOPPING=1 when it begins to stop (sd_notify(3)). The socket here stands in for systemd's."""

from __future__ import annotations

import signal
import socket
import subprocess
from pathlib import Path

import pytest

from rig import Rig
from rig.cli import clean_env, gateway_script
from rig.ports import LOOPBACK, free_port

pytestmark = pytest.mark.e2e

TIMEOUT = 30.0


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_tells_the_service_manager_it_is_ready_and_stopping(
    rig: Rig, tmp_path: Path, workers: int
) -> None:
    port = free_port()
    config = rig.write_config(
        tmp_path / "gateway.toml",
        smtp={"listen": f"{LOOPBACK}:{port}", "workers": workers},
        store={"data_dir": str(tmp_path / "data")},
    )
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as manager:
        manager.bind(str(tmp_path / "notify"))
        manager.settimeout(TIMEOUT)
        serve = subprocess.Popen(
            [str(gateway_script()), "serve", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=clean_env({"NOTIFY_SOCKET": str(tmp_path / "notify")}),
        )
        try:
            assert manager.recv(4096) == b"READY=1"
            # Ready means listening: a client is answered at once.
            with socket.create_connection((LOOPBACK, port), timeout=TIMEOUT) as client:
                assert client.recv(512).startswith(b"220 ")
            serve.send_signal(signal.SIGTERM)
            assert manager.recv(4096) == b"STOPPING=1"
            assert serve.wait(TIMEOUT) == 0
        finally:
            if serve.poll() is None:
                serve.kill()
                serve.wait(TIMEOUT)
