"""The MTA-STS policy cache on disk (SQLite in the data directory), so a restart keeps what the
gateway learned. The rules for using it are in ``gateway.core.stscache``.

The raw policy text is stored, not a parsed form: on load it is parsed again, so a cache written
by an older release can never smuggle in a policy today's parser would refuse.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from gateway.core.model import PolicyStatus
from gateway.core.mtasts import StsError, parse_policy
from gateway.core.stscache import CachedPolicy, FetchFailure

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sts_policy (
    domain      TEXT PRIMARY KEY,
    id          TEXT NOT NULL,
    policy      TEXT NOT NULL,
    fetched_at  REAL NOT NULL,
    expires_at  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sts_failure (
    domain      TEXT PRIMARY KEY,
    id          TEXT NOT NULL,
    at          REAL NOT NULL,
    status      TEXT NOT NULL,
    error       TEXT NOT NULL,
    temporary   INTEGER NOT NULL
);
"""


class PolicyDb:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, timeout=5.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        # A lost cache write costs one refetch, so no fsync per write.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def policy(self, domain: str) -> CachedPolicy | None:
        row = self._db.execute(
            "SELECT id, policy, fetched_at, expires_at FROM sts_policy WHERE domain = ?",
            (domain,),
        ).fetchone()
        if row is None:
            return None
        record_id, text, fetched_at, expires_at = row
        try:
            policy = parse_policy(text)
        except StsError:
            self.forget(domain)
            return None
        return CachedPolicy(domain, record_id, policy, text, fetched_at, expires_at)

    def failure(self, domain: str) -> FetchFailure | None:
        row = self._db.execute(
            "SELECT id, at, status, error, temporary FROM sts_failure WHERE domain = ?",
            (domain,),
        ).fetchone()
        if row is None:
            return None
        record_id, at, status, error, temporary = row
        return FetchFailure(record_id, at, PolicyStatus(status), error, bool(temporary))

    def store_policy(self, cached: CachedPolicy) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO sts_policy VALUES (?, ?, ?, ?, ?)",
            (cached.domain, cached.id, cached.text, cached.fetched_at, cached.expires_at),
        )
        self._db.execute("DELETE FROM sts_failure WHERE domain = ?", (cached.domain,))

    def store_failure(self, domain: str, failure: FetchFailure) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO sts_failure VALUES (?, ?, ?, ?, ?, ?)",
            (
                domain,
                failure.id,
                failure.at,
                failure.status.value,
                failure.error,
                int(failure.temporary),
            ),
        )

    def forget(self, domain: str | None = None) -> int:
        """Purge one domain's cached policy and failure, or all of them. Returns how many."""
        if domain is None:
            count = self._db.execute("DELETE FROM sts_policy").rowcount
            self._db.execute("DELETE FROM sts_failure")
            return int(count)
        count = self._db.execute("DELETE FROM sts_policy WHERE domain = ?", (domain,)).rowcount
        self._db.execute("DELETE FROM sts_failure WHERE domain = ?", (domain,))
        return int(count)

    def domains(self) -> list[str]:
        return [row[0] for row in self._db.execute("SELECT domain FROM sts_policy ORDER BY 1")]
