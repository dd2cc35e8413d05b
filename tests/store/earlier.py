"""A data directory as the release before the body tables left it: each sealed body a file
(``held/<hold id>.msg``, ``queue/<queue id>.msg``, mode 0600), the schema one step short.

Made from a data directory this release wrote (so every row is real): the body rows become
files, byte for byte, and the tables and the schema version go back to what they were.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from gateway.store.safeio import private_dir, write_atomic
from gateway.store.sqlite import HELD_DB, tables

# The schema version of that release: every step but the body tables.
VERSION = len(tables.migrations(bytes(32), time.time)) - 1


def as_earlier_release(data_dir: Path) -> dict[str, Path]:
    """Turn ``data_dir`` (its store closed) into that release's layout; the files made."""
    db = sqlite3.connect(data_dir / HELD_DB, isolation_level=None)
    made = {}
    try:
        for folder, table, key in (
            ("held", "hold_bodies", "hold_id"),
            ("queue", "queue_bodies", "queue_id"),
        ):
            private_dir(data_dir / folder)
            for row_id, body in db.execute(f"SELECT {key}, body FROM {table}").fetchall():  # noqa: S608
                path = data_dir / folder / f"{row_id}.msg"
                write_atomic(path, bytes(body))
                made[row_id] = path
            db.execute(f"DROP TABLE {table}")
        db.execute(f"PRAGMA user_version = {VERSION}")
    finally:
        db.close()
    return made
