"""The body files of releases before the body tables (``tables.BODIES``): ``held/<id>.msg``
and ``queue/<id>.msg``, taken into the database when the store opens.

Taken in rather than read from their files for ever: afterwards a body has one place, so a
purge, a key rotation, a backup and ``store copy`` each know one way to find it, and nothing
but this module walks the folders. It runs at every open, and costs a folder listing once
the folders are empty (a restored backup of an earlier release brings files back; they are
taken in at its first start).

Each file a row still needs is inserted as it is (still sealed, never opened here), a batch
of files per transaction; only after that COMMIT are the files removed and the folder
fsync'd, so a kill in between leaves a file whose body is in the table already, and the next
open removes it. A file whose row no longer needs it (a purged hold, a finished entry) goes
too, as the purge would have removed it. A file without a row is left alone: it may be the
body of a hold an earlier release is committing at this moment (its order was file, then
row), and such a blob was always harmless.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from gateway.store.safeio import fsync_dir
from gateway.store.sqlite.database import Database

BATCH = 100


@dataclass(frozen=True)
class _Kind:
    folder: str
    insert: str  # the body into its table, unless it is there
    needed: str  # the row that still needs the body
    has_body: str
    has_row: str


_KINDS = (
    _Kind(
        "held",
        "INSERT OR IGNORE INTO hold_bodies (hold_id, body) VALUES (?, ?)",
        "SELECT 1 FROM holds WHERE id = ? AND purged_at IS NULL",
        "SELECT 1 FROM hold_bodies WHERE hold_id = ?",
        "SELECT 1 FROM holds WHERE id = ?",
    ),
    _Kind(
        "queue",
        "INSERT OR IGNORE INTO queue_bodies (queue_id, body) VALUES (?, ?)",
        "SELECT 1 FROM queue WHERE id = ? AND done_at IS NULL",
        "SELECT 1 FROM queue_bodies WHERE queue_id = ?",
        "SELECT 1 FROM queue WHERE id = ?",
    ),
)


def adopt(file: Database, data_dir: Path) -> int:
    """Take the body files under ``data_dir`` into ``file``'s tables; how many were taken."""
    taken = 0
    for kind in _KINDS:
        folder = data_dir / kind.folder
        if not folder.is_dir():
            continue
        files = sorted(folder.glob("*.msg"))
        for start in range(0, len(files), BATCH):
            batch = files[start : start + BATCH]
            taken += file.call(partial(file.write, partial(_insert, file.db, kind, batch)))
            gone = file.call(partial(_settled, file.db, kind, batch))
            for path in gone:
                path.unlink(missing_ok=True)
            if gone:
                fsync_dir(folder)
    return taken


def _insert(db: sqlite3.Connection, kind: _Kind, files: list[Path]) -> int:
    taken = 0
    for path in files:
        if db.execute(kind.needed, (path.stem,)).fetchone() is None:
            continue
        try:
            body = path.read_bytes()
        except FileNotFoundError:  # another worker starting at the same time took it
            continue
        taken += db.execute(kind.insert, (path.stem, body)).rowcount
    return taken


def _settled(db: sqlite3.Connection, kind: _Kind, files: list[Path]) -> list[Path]:
    """The files no longer needed: their body is in the table, or their row needs none (a
    row that needs one had it taken in by ``_insert``)."""
    return [
        path
        for path in files
        if db.execute(kind.has_body, (path.stem,)).fetchone() is not None
        or db.execute(kind.has_row, (path.stem,)).fetchone() is not None
    ]
