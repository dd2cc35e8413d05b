"""A lock shared by the gateway's processes (flock on a file in the data directory), for work
that must happen once across workers: fetching one domain's MTA-STS policy."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

POLL = 0.02


class LockTimeout(TimeoutError):
    pass


@contextlib.asynccontextmanager
async def locked(folder: Path, name: str, patience: float) -> AsyncIterator[None]:
    """Take the lock called ``name`` in ``folder`` (which must exist), waiting at most
    ``patience`` seconds; poll instead of blocking, so the event loop (and no thread) waits.
    The kernel drops the lock if the process dies."""
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
