"""Starting `gateway serve` with several workers: whatever fails at start-up, or however the
leader ends, no gateway process is left behind (an orphaned worker would go on answering SMTP
with nobody sweeping the holds).

Every check runs before a socket is bound or a worker started; a worker that dies while
starting fails the whole start; a worker never outlives its leader, even one killed with
SIGKILL. "Left behind" is read from /proc: any process whose command line names the test's
configuration file (every worker is started with ``--config`` and the same file).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from rig.cli import clean_env, gateway_script
from rig.pki import RigCA
from rig.ports import LOOPBACK, free_port

EXIT_FINDING, EXIT_USAGE = 1, 2
START_TIMEOUT = 30.0
GONE_TIMEOUT = 20.0

# Put first on PYTHONPATH, this kills worker 2 as it starts (and nothing else): a stand-in for
# any worker that dies before it listens.
KILL_WORKER_2 = """\
import os, sys
if "--worker" in sys.argv and sys.argv[sys.argv.index("--worker") + 1] == "2":
    os._exit(3)
"""


def write_config(folder: Path, workers: int = 3, **sections: dict[str, object]) -> Path:
    settings: dict[str, dict[str, object]] = {
        "smtp": {"listen": f"{LOOPBACK}:{free_port()}", "workers": workers},
        "store": {"data_dir": "data"},
        "allowlist": {"paths": []},
        "web": {"listen": f"{LOOPBACK}:{free_port()}"},
    }
    for name, values in sections.items():
        settings.setdefault(name, {}).update(values)
    lines = []
    for name, values in settings.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    path = folder / "gateway.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def processes_naming(config: Path) -> list[int]:
    """Live processes whose command line names ``config`` (zombies have an empty one)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # it ended while we looked
            continue
        if str(config).encode() in argv:
            found.append(int(entry.name))
    return found


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not {what} after {timeout:.0f} s")
        time.sleep(0.05)


def run_serve(config: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(gateway_script()), "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        env=clean_env(env),
        timeout=START_TIMEOUT * 2,
        check=False,
    )


def assert_nothing_left(config: Path) -> None:
    left = processes_naming(config)
    for pid in left:  # never leave them to the next test, even when failing
        os.kill(pid, signal.SIGKILL)
    assert not left, f"gateway processes left behind: {left}"


@dataclass(frozen=True)
class Case:
    name: str
    sections: dict[str, dict[str, object]]
    status: int
    says: str
    prepare: Callable[[Path], None] = lambda folder: None


def _unsafe_web_key(folder: Path) -> None:
    (folder / "data").mkdir()
    (folder / "data" / "web.key").write_text("k" * 64 + "\n")
    (folder / "data" / "web.key").chmod(0o644)


def _smtp_certificate(folder: Path) -> None:
    RigCA(folder / "pki").issue(("gateway.test",), stem="gateway")


def _file_where_data_dir_goes(folder: Path) -> None:
    (folder / "not-a-folder").write_text("")


CASES = [
    Case(
        "half a web TLS pair (the reported orphan)",
        {"web": {"tls_cert": "web.crt"}},
        EXIT_USAGE,
        "config error: web.tls_key",
    ),
    Case(
        "a web TLS pair that does not load",
        {"web": {"tls_cert": "missing.crt", "tls_key": "missing.key"}},
        EXIT_USAGE,
        "config error: web.tls_cert: cannot load",
    ),
    Case(
        "an SMTP certificate file that does not exist",
        {"smtp": {"tls_cert": "missing.crt", "tls_key": "missing.key"}},
        EXIT_USAGE,
        "config error: smtp.tls_cert: cannot load",
    ),
    Case(
        "a client CA file that does not exist",
        {
            "smtp": {
                "tls_cert": "pki/gateway.crt",
                "tls_key": "pki/gateway.key",
                "client_ca_file": "missing-ca.pem",
            }
        },
        EXIT_USAGE,
        "config error: smtp.client_ca_file: cannot load",
        _smtp_certificate,
    ),
    Case(
        "a web secret key readable by others",
        {},
        EXIT_USAGE,
        "config error: web.secret_key",
        _unsafe_web_key,
    ),
    Case(
        "a data directory that cannot be created",
        {"store": {"data_dir": "not-a-folder/data"}},
        EXIT_FINDING,
        "gateway: cannot start:",
        _file_where_data_dir_goes,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_start_up_check_that_fails_leaves_no_process(tmp_path: Path, case: Case) -> None:
    case.prepare(tmp_path)
    config = write_config(tmp_path, **case.sections)
    result = run_serve(config)
    assert result.returncode == case.status, result.stderr
    assert case.says in result.stderr
    assert_nothing_left(config)


def test_an_smtp_port_in_use_stops_the_start_before_any_worker(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind((LOOPBACK, 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_config(tmp_path, smtp={"listen": f"{LOOPBACK}:{port}"})
        result = run_serve(config)
    assert result.returncode == EXIT_FINDING, result.stderr
    assert "gateway: cannot start:" in result.stderr
    assert_nothing_left(config)


def test_a_worker_that_dies_while_starting_stops_the_start(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(KILL_WORKER_2)
    config = write_config(tmp_path)
    result = run_serve(config, env={"PYTHONPATH": str(site)})
    assert result.returncode == EXIT_FINDING, result.stderr
    assert "gateway: cannot start: worker 2 exited with status 3 while starting" in result.stderr
    assert_nothing_left(config)  # workers 1 and 3 had started: the leader stopped them


@pytest.fixture
def leader(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    config = write_config(tmp_path)
    log = tmp_path / "stdout"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(gateway_script()), "serve", "--config", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=clean_env(),
        )
    try:

        def listening() -> bool:
            assert proc.poll() is None, log.read_text()
            events = [json.loads(line) for line in log.read_text().splitlines() if line[:1] == "{"]
            return any(e["event"] == "listening" and e.get("worker") == 0 for e in events)

        wait_until(listening, START_TIMEOUT, "listening")
        yield proc, config
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for pid in processes_naming(config):
            os.kill(pid, signal.SIGKILL)


def test_workers_stop_when_the_leader_is_killed(
    leader: tuple[subprocess.Popen[bytes], Path],
) -> None:
    proc, config = leader
    workers = [pid for pid in processes_naming(config) if pid != proc.pid]
    assert len(workers) == 2, "three workers in all: the leader and two more"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    wait_until(lambda: not processes_naming(config), GONE_TIMEOUT, "every worker gone")
    smtp = config.read_text().split('listen = "', 1)[1].split('"')[0].rsplit(":", 1)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((smtp[0], int(smtp[1])), timeout=5).close()
