"""Files and folders the store makes are private whatever the umask, and ones an older release
left readable by others are narrowed when the gateway opens them."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.store.safeio import private_dir, write_atomic
from gateway.store.sqlite.database import Database


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    before = os.umask(0)
    try:
        yield
    finally:
        os.umask(before)


def test_made_under_umask_000_are_private(tmp_path: Path, open_umask: None) -> None:
    data = tmp_path / "a" / "b" / "data"
    db = Database(data / "x.sqlite3", [], name="test")
    try:
        db.call(lambda: db.db.execute("CREATE TABLE t (x)"))
        for folder in [tmp_path / "a", tmp_path / "a" / "b", data]:
            assert mode(folder) == 0o700, folder
        assert mode(data / "x.sqlite3") == 0o600
        assert mode(data / "x.sqlite3-wal") == 0o600
        assert mode(data / "x.sqlite3-shm") == 0o600
    finally:
        db.close_now()
    write_atomic(data / "blob", b"sealed")
    assert mode(data / "blob") == 0o600


def test_an_older_release_s_wide_modes_are_narrowed(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    first = Database(data / "held.sqlite3", [], name="test")
    first.call(lambda: first.db.execute("CREATE TABLE t (x)"))
    first.close_now()
    for path in [data / "held.sqlite3", *data.glob("held.sqlite3-*")]:
        os.chmod(path, 0o644)
    os.chmod(data, 0o755)  # noqa: S103 (as an older release left it)
    again = Database(data / "held.sqlite3", [], name="test")
    try:
        assert mode(data) == 0o700
        assert mode(data / "held.sqlite3") == 0o600
        assert all(mode(p) == 0o600 for p in data.glob("held.sqlite3-*"))
    finally:
        again.close_now()
    os.chmod(data, 0o750)  # noqa: S103 (as an operator may have made it)
    assert mode(private_dir(data)) == 0o700
