"""Locks for work that must happen once across the gateway's processes: fetching one domain's
MTA-STS policy (RFC 8461 §3.3 lets a sender cache it; we fetch it once, not once per process).

``FetchLocks`` is what ``DomainChecker`` asks for. ``FileLocks`` serves the worker processes of
one machine (flock on a file in the data directory); several nodes on PostgreSQL use
``gateway.store.postgres.locks.AdvisoryLocks`` instead, since a file lock is seen by one host
only.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Protocol

# How often a worker waiting for another's fetch tries the lock again. A policy fetch takes
# tens of milliseconds, and every message to that domain waits for it to end: a short poll
# keeps them from waiting a poll's length more (a try is one flock call).
POLL = 0.005


class LockTimeout(TimeoutError):
    pass


class FetchLocks(Protocol):
    def locked(self, name: str, patience: float) -> AbstractAsyncContextManager[None]:
        """Hold the lock called ``name`` for the block, waiting at most ``patience`` seconds
        for it (LockTimeout after that). The wait polls: neither the event loop nor a thread
        blocks on it."""
        ...


class FileLocks:
    """Implements ``FetchLocks`` with flock on files in ``folder`` (which must exist); the
    kernel drops a lock when its process dies."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def locked(self, name: str, patience: float) -> AbstractAsyncContextManager[None]:
        return _flocked(self.folder, name, patience)


@contextlib.asynccontextmanager
async def _flocked(folder: Path, name: str, patience: float) -> AsyncIterator[None]:
    path = folder / (hashlib.sha256(name.encode()).hexdigest()[:32] + ".lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        deadline = asyncio.get_running_loop().time() + patience
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if asyncio.get_running_loop().time() >= deadline:
                    # Not chained: BlockingIOError only says another process holds the
                    # lock, which is what the timeout says.
                    raise LockTimeout(name) from None
                await asyncio.sleep(POLL)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
