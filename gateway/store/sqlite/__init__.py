"""The embedded backend: SQLite files in the data directory, each used one way (``Database``).

``SqliteStore`` is the hold store (holds, relay journal, audit trail, outbox; ``store``,
``tables``, ``trail``, ``outbox``, ``queries``); the policy cache and the accounts open their
own files through the same ``Database``.
"""

from __future__ import annotations

from gateway.store.sqlite.database import Database
from gateway.store.sqlite.store import HELD_DB, SqliteStore

__all__ = ["HELD_DB", "Database", "SqliteStore"]
