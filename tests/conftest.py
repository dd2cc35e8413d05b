"""Fixtures every test directory shares: the rig's PostgreSQL server (one per session), and the
hold store on either backend (store.backends)."""

from store.backends import hold_backend, hold_store, store_nodes

from rig.plugin import pg_dsn, postgres_server

__all__ = ["hold_backend", "hold_store", "pg_dsn", "postgres_server", "store_nodes"]
