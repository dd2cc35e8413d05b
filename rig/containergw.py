"""`gateway serve` in its container image, as the end-to-end tests drive a gateway process.

:func:`run_container` writes a rig config as a user mounts one (/etc/gateway/gateway.toml,
state in the /var/lib/gateway volume: a folder of the test owned by the image's user), starts
the image with ``--network host`` so that the gateway reaches the rig on loopback, and waits
for its "listening" log line. :class:`ContainerProcess` stands where rig.gatewayproc's
GatewayProcess does in a :class:`rig.gatewayproc.Gateway`, so the same clients and store
readers apply.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from rig import tomlwrite
from rig.gatewayproc import HOSTNAME, LOCAL_DOMAIN, START_TIMEOUT, STOP_TIMEOUT, Gateway
from rig.podman import IMAGE, podman, ulimit_flags
from rig.ports import LOOPBACK, free_port
from rig.rig import Rig
from rig.upstream import Upstream

# The image's user (Dockerfile: useradd --uid): it must own the state volume.
IMAGE_UID = 10025
ETC = "/etc/gateway"
STATE = "/var/lib/gateway"


class ContainerProcess:
    """One container of the image, named `name`, whose gateway listens on `port`."""

    def __init__(self, name: str, port: int, run_args: list[str]) -> None:
        self.name = name
        self.port = port
        self.run_args = run_args
        self.forced = False

    @property
    def running(self) -> bool:
        return self.state("{{.State.Running}}") == "true"

    def state(self, template: str) -> str:
        return podman("inspect", "--format", template, self.name, check=False).stdout.strip()

    def start(self, timeout: float = START_TIMEOUT) -> None:
        podman("rm", "--force", "--time=0", self.name, check=False)
        podman("run", "--detach", f"--name={self.name}", *self.run_args, IMAGE)
        deadline = time.monotonic() + timeout
        while not self.events("listening"):
            if not self.running or time.monotonic() > deadline:
                raise AssertionError(f"the container is not listening\n{self.output()}")
            time.sleep(0.1)

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """`podman stop`: the image's STOPSIGNAL (SIGTERM), then SIGKILL after `timeout`."""
        began = time.monotonic()
        podman("stop", f"--time={int(timeout)}", self.name, timeout=timeout + 30)
        self.forced = time.monotonic() - began >= timeout
        return int(self.state("{{.State.ExitCode}}"))

    def remove(self) -> None:
        podman("rm", "--force", "--time=0", self.name, check=False)

    def signal(self, name: str) -> None:
        podman("kill", f"--signal={name}", self.name)

    def healthcheck(self) -> tuple[int, str]:
        """`podman healthcheck run`: its exit status and what it printed."""
        done = podman("healthcheck", "run", self.name, timeout=60, check=False)
        return done.returncode, (done.stdout + done.stderr).strip()

    def last_health_output(self) -> str:
        """What the last healthcheck printed (docker/podman inspect keep it)."""
        checks = json.loads(self.state("{{json .State.Health.Log}}") or "[]")
        return str(checks[-1]["Output"]) if checks else ""

    def stdout(self) -> str:
        return podman("logs", self.name, check=False).stdout

    def output(self) -> str:
        done = podman("logs", self.name, check=False)
        return f"--- stdout\n{done.stdout}--- stderr\n{done.stderr}"

    def log(self) -> list[dict[str, Any]]:
        entries = []
        for line in self.stdout().splitlines():
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if isinstance(entry, dict):
                    entries.append(entry)
        return entries

    def events(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.log() if e.get("event") == name]


def _readable_copy(source: Path, folder: Path) -> Path:
    # The image's user reads what is mounted; the rig's own files are the test runner's.
    target = folder / source.name
    shutil.copyfile(source, target)
    target.chmod(0o644)
    return target


def run_container(rig: Rig, workdir: Path, upstream: Upstream) -> Gateway:
    """Start the image for the rig (relaying to `upstream`); a Gateway whose proc is the
    container."""
    etc = workdir / "etc"
    state = workdir / "state"
    etc.mkdir(parents=True)
    state.mkdir(mode=0o700)
    os.chown(state, IMAGE_UID, IMAGE_UID)
    assert rig.allowlist_file is not None
    ca = _readable_copy(rig.ca_file, etc)
    allowlist = _readable_copy(rig.allowlist_file, etc)
    port = free_port()
    doc = rig.config(
        smtp={"listen": f"{LOOPBACK}:{port}", "hostname": HOSTNAME},
        relay={"host": LOOPBACK, "port": upstream.port},
        policy={"local_domains": [LOCAL_DOMAIN]},
        store={"data_dir": STATE},
        mta_sts={"ca_file": f"{ETC}/{ca.name}"},
        allowlist={"paths": [f"{ETC}/{allowlist.name}"]},
    )
    config = etc / "gateway.toml"
    config.write_text(tomlwrite.tables(doc))
    config.chmod(0o644)
    run_args = [
        "--network=host",
        f"--volume={config}:{ETC}/gateway.toml:ro",
        f"--volume={ca}:{ETC}/{ca.name}:ro",
        f"--volume={allowlist}:{ETC}/{allowlist.name}:ro",
        f"--volume={state}:{STATE}",
        # No systemd here to run podman's healthcheck timer: the test runs each check itself.
        "--health-interval=disable",
        *ulimit_flags(),
    ]
    proc = ContainerProcess(f"gateway-test-{os.getpid()}-{port}", port, run_args)
    proc.start()
    return Gateway(proc, upstream, state)  # type: ignore[arg-type]
