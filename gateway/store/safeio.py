"""Durable file writes: a file is either absent or complete, and on disk before we say so.

Write to a temporary file in the same folder, fsync it, rename it into place, then fsync the
folder so the rename itself survives a power cut (rename(2) is atomic, not durable).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def _write_temporary(path: Path, data: bytes, mode: int) -> Path:
    """A fully written, fsync'd file beside ``path``, under a name nobody else uses."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return temporary


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    temporary = _write_temporary(path, data, mode)
    try:
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def create_exclusive(path: Path, data: bytes, mode: int = 0o600) -> bool:
    """Create ``path`` with ``data`` unless it exists; True if this call created it. For
    secrets made at first start, where two processes must not each make their own."""
    temporary = _write_temporary(path, data, mode)
    try:
        os.link(temporary, path)  # fails if path exists: the first writer wins
    except FileExistsError:
        return False
    finally:
        temporary.unlink(missing_ok=True)
    fsync_dir(path.parent)
    return True
