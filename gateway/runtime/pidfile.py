"""The pid file of a running `gateway serve` (``gateway.pid`` in its data directory), for
`gateway reload` to find the leader of this configuration without a service manager.

Written by the leader once it listens, 0600 like everything in the data directory, and removed
at a clean stop. After a crash (kill -9, a power cut) it stays behind: a reader checks that the
process still runs and is a `gateway serve` before it signals, because a pid is reused, and
SIGHUP's default action terminates a process that does not handle it (signal(7)).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from gateway.store.safeio import private_dir, write_atomic

PID_FILE = "gateway.pid"


@dataclass(frozen=True)
class Found:
    """What a pid file says: ``pid`` (0 when there is none or it cannot be read) and whether
    that process is a running `gateway serve`."""

    path: Path
    pid: int
    running: bool
    problem: str = ""


def write(folder: Path) -> Path:
    private_dir(folder)
    path = folder / PID_FILE
    write_atomic(path, f"{os.getpid()}\n".encode())
    return path


def remove(path: Path) -> None:
    """Remove the pid file if it is still this process's (a later start may own it now)."""
    with contextlib.suppress(OSError, ValueError):
        if int(path.read_text().strip()) == os.getpid():
            path.unlink()


def read(folder: Path) -> Found:
    path = folder / PID_FILE
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return Found(path, 0, False)
    except (OSError, UnicodeDecodeError) as exc:
        return Found(path, 0, False, f"cannot read {path}: {exc}")
    if not text.isdigit() or int(text) <= 1:
        return Found(path, 0, False, f"{path} holds no process id: {text[:40]!r}")
    pid = int(text)
    return Found(path, pid, _is_gateway_serve(pid))


def _is_gateway_serve(pid: int) -> bool:
    """The process runs and its command line is `... serve ...` (the leader; workers have
    ``--worker``). /proc/PID/cmdline is Linux's, proc(5)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:  # no such process (or no /proc: then we cannot tell, and do not signal)
        return False
    return b"serve" in argv and b"--worker" not in argv
