"""Which process owns a piece of work (a release being delivered, notices being sent), and
whether that process is gone, so another may take the work over at once after a crash."""

from __future__ import annotations

import os
import socket


def process_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_dead(owner: str) -> bool:
    """True when ``owner`` names a process on this host that no longer runs."""
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
