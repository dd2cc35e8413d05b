"""A hold store that refuses to keep any new hold, as a full or failing disk would.

The embedded store keeps a hold's sealed body in its database, in the transaction of its
row; a trigger put into that file by another connection makes every such insert fail, so the
gateway under test meets the failure where a real one would reach it: at the write.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

REFUSE = (
    "CREATE TRIGGER refuse_holds BEFORE INSERT ON hold_bodies"
    " BEGIN SELECT RAISE(ABORT, 'the disk refused the write'); END"
)


def refuse_holds(held_db: Path) -> None:
    """From now on every new hold in ``held_db`` fails (the gateway's connection sees the
    schema change at its next statement)."""
    db = sqlite3.connect(held_db, timeout=30.0, isolation_level=None)
    try:
        db.execute(REFUSE)
    finally:
        db.close()
