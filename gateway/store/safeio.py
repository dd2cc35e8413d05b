"""Durable, private file writes: a file is either absent or complete, and on disk before we
say so; and nobody but the gateway's own user may read it.

Write to a temporary file in the same folder, fsync it, rename it into place, then fsync the
folder so the rename itself survives a power cut (rename(2) is atomic, not durable).

Everything the gateway writes holds someone's data or a secret (senders, recipients,
rationales, password hashes, keys), so every file is 0600 and every folder 0700 whatever the
umask: the mode is set with fchmod/chmod after creating, not left to ``open``'s mode argument,
which the umask narrows (and ``mkdir -p`` ignores for the parents, see mkdir(1)).
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
        os.fchmod(fd, mode)  # exactly this, whatever the umask took away
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return temporary


def write_atomic(path: Path, data: bytes, mode: int = 0o600, *, sync_folder: bool = True) -> None:
    """``path`` with ``data``, complete or absent. With ``sync_folder`` false the caller
    fsyncs the folder itself before relying on the file (once for many files: group
    commit, ``sqlite.groupcommit``)."""
    temporary = _write_temporary(path, data, mode)
    try:
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    if sync_folder:
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


PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


def private_dir(folder: Path) -> Path:
    """Make ``folder`` and any missing parents with mode 0700; an existing ``folder`` of ours
    that group or others may enter (an older release, ``mkdir`` under umask 022) is
    narrowed to 0700."""
    for parent in reversed(folder.parents):
        if not parent.exists():
            _make_dir(parent)
    if not folder.exists():
        _make_dir(folder)
    else:
        tighten(folder, PRIVATE_DIR)
    return folder


def _make_dir(folder: Path) -> None:
    try:
        os.mkdir(folder, PRIVATE_DIR)
    except FileExistsError:  # another process made it first: it made it private too
        return
    os.chmod(folder, PRIVATE_DIR)


def tighten(path: Path, mode: int) -> None:
    """Narrow ``path`` to ``mode`` if it is ours and wider; nothing if it is not there."""
    try:
        found = path.stat()
    except FileNotFoundError:
        return
    if found.st_uid == os.getuid() and found.st_mode & 0o777 & ~mode:
        os.chmod(path, mode)


def create_private(path: Path) -> None:
    """Create ``path`` empty (mode 0600) and its folder (0700) unless they exist; an existing
    file of ours that others may read is narrowed to 0600."""
    private_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    except FileExistsError:
        tighten(path, PRIVATE_FILE)
        return
    try:
        os.fchmod(fd, PRIVATE_FILE)
    finally:
        os.close(fd)
