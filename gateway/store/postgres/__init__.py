"""The shared backend: one PostgreSQL database for several gateway nodes (``[store] backend =
"postgresql"``). ``database`` has the pools, the timeouts and the schema's versions; ``tables``
the schema itself; ``store.PgStore`` the hold store on it.
"""

from __future__ import annotations

from gateway.store.postgres.database import Database, SyncDatabase
from gateway.store.postgres.store import PgStore
from gateway.store.postgres.tables import SCHEMA_VERSION

__all__ = ["SCHEMA_VERSION", "Database", "PgStore", "SyncDatabase"]
