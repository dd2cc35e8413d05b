"""deploy/gateway.service: systemd accepts it without a single warning, and it carries the
hardening and the reload the deployment guide promises.

`systemd-analyze verify` needs the ExecStart binary to exist, so it checks a copy whose
ExecStart is this checkout's installed `gateway` (the same command line otherwise).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "deploy" / "gateway.service"
INSTALLED = "/opt/gateway/bin/gateway"


def directives(text: str) -> dict[str, list[str]]:
    """Every ``Key=value`` of the unit, in order of appearance, by key."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def test_systemd_analyze_verify_passes_without_a_warning(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze is not installed (Debian package systemd)")
    gateway = Path(sys.executable).with_name("gateway")
    assert gateway.exists(), f"no installed gateway at {gateway}"
    text = UNIT.read_text()
    assert f"ExecStart={INSTALLED} " in text
    copy = tmp_path / "gateway.service"
    copy.write_text(text.replace(f"ExecStart={INSTALLED} ", f"ExecStart={gateway} "))
    done = subprocess.run(
        [analyze, "verify", "--man=no", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # Unknown keys and bad values are warnings with exit status 0: any line about the unit
    # fails the test (lines about the host's own units are not ours to fix).
    ours = [line for line in (done.stdout + done.stderr).splitlines() if "gateway.service" in line]
    assert done.returncode == 0, done.stderr
    assert ours == []


EXPECTED = [
    ("Type", "notify"),
    ("User", "gateway"),
    ("Group", "gateway"),
    ("ExecStart", f"{INSTALLED} serve --config /etc/gateway/gateway.toml"),
    ("ExecReload", "/bin/kill -HUP $MAINPID"),
    ("Restart", "on-failure"),
    ("KillMode", "mixed"),
    ("StateDirectory", "gateway"),
    ("StateDirectoryMode", "0700"),
    ("ConfigurationDirectory", "gateway"),
    ("ProtectSystem", "strict"),
    ("ProtectHome", "yes"),
    ("PrivateTmp", "yes"),
    ("NoNewPrivileges", "yes"),
    ("CapabilityBoundingSet", ""),
    ("AmbientCapabilities", ""),
    ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
    ("SystemCallFilter", "@system-service"),
    ("LimitNOFILE", "65536"),
]


@pytest.mark.parametrize(("key", "value"), EXPECTED, ids=[k for k, _ in EXPECTED])
def test_the_unit_sets(key: str, value: str) -> None:
    assert directives(UNIT.read_text()).get(key) == [value]


def test_stopping_waits_longer_than_the_gateway_takes_to_finish_a_transaction() -> None:
    from gateway.config.settings import Settings
    from gateway.runtime import serve, workers

    stop = directives(UNIT.read_text())["TimeoutStopSec"]
    assert len(stop) == 1
    assert stop[0].endswith("s")
    # The workers' grace, then the sessions' drain, with a relay in progress in between.
    needed = workers.STOP_GRACE + serve.SESSION_DRAIN + Settings().relay.timeout
    assert float(stop[0].removesuffix("s")) > needed
