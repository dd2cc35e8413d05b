"""Fixtures every test directory shares: the rig's PostgreSQL server (one per session)."""

from rig.plugin import pg_dsn, postgres_server

__all__ = ["pg_dsn", "postgres_server"]
