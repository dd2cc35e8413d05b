"""Small helpers shared by the harness: ports, binaries, waiting for a server. The rig (rig/)
is the tests' own, imported as a package: run the bench from the repository root
(`python -m bench`, as `make bench` does)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from rig.ports import LOOPBACK, free_port

ROOT = Path(__file__).resolve().parent.parent

__all__ = ["LOOPBACK", "ROOT", "free_port", "need", "wait_smtp"]

_SBIN = "/usr/sbin:/usr/bin:/sbin:/bin"


def need(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=_SBIN)
    if found is None:
        raise RuntimeError(f"{name} is not installed (the harness installs it: make bench)")
    return found


def wait_smtp(
    port: int, proc: subprocess.Popen[bytes] | None = None, timeout: float = 20.0
) -> None:
    """Wait until 127.0.0.1:`port` answers with an SMTP greeting."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server for port {port} exited with status {proc.returncode}")
        try:
            with socket.create_connection((LOOPBACK, port), timeout=1.0) as s:
                if s.recv(512).startswith(b"220"):
                    s.sendall(b"QUIT\r\n")
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"no SMTP greeting on {LOOPBACK}:{port} after {timeout:.0f} s")
