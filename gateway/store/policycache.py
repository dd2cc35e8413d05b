"""The MTA-STS policy cache on disk (SQLite in the data directory), so a restart keeps what the
gateway learned. The rules for using it are in ``gateway.core.stscache``.

The raw policy text is stored, not a parsed form: on load it is parsed again, so a cache written
by an older release can never smuggle in a policy today's parser would refuse.

The cache is read on the SMTP hot path (every flagged message's MTA-STS step), so, like every
store, its SQLite calls run on the file's own thread (``Database``), never on the event loop:
a busy file delays the sessions that wait for it, not every session.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from gateway.core.model import PolicyStatus
from gateway.core.mtasts import StsError, parse_policy
from gateway.core.stscache import CachedPolicy, FetchFailure
from gateway.store.sqlite.database import Database, script

_VERSION_1 = """
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
    """Implements ``gateway.store.PolicyCache``."""

    def __init__(self, path: Path) -> None:
        # A lost cache write costs one refetch, so no fsync per write.
        self._file = Database(
            path, (script(_VERSION_1),), synchronous="NORMAL", timeout=5.0, name="policy-cache"
        )
        self._db = self._file.db

    async def close(self) -> None:
        await self._file.close()

    async def policy(self, domain: str) -> CachedPolicy | None:
        return await self._file.run(lambda: self._policy(domain))

    def _policy(self, domain: str) -> CachedPolicy | None:
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
            self._forget(domain)
            return None
        return CachedPolicy(domain, record_id, policy, text, fetched_at, expires_at)

    async def failure(self, domain: str) -> FetchFailure | None:
        return await self._file.run(lambda: self._failure(domain))

    async def entry(self, domain: str) -> tuple[CachedPolicy | None, FetchFailure | None]:
        # One hop to the file's thread for both: every domain check reads the two together
        # (twice when it has to fetch), and the hand-off costs more than the reads.
        return await self._file.run(lambda: (self._policy(domain), self._failure(domain)))

    def _failure(self, domain: str) -> FetchFailure | None:
        row = self._db.execute(
            "SELECT id, at, status, error, temporary FROM sts_failure WHERE domain = ?",
            (domain,),
        ).fetchone()
        if row is None:
            return None
        record_id, at, status, error, temporary = row
        return FetchFailure(record_id, at, PolicyStatus(status), error, bool(temporary))

    async def store_policy(self, cached: CachedPolicy) -> None:
        def write() -> None:
            self._db.execute(
                "INSERT OR REPLACE INTO sts_policy VALUES (?, ?, ?, ?, ?)",
                (cached.domain, cached.id, cached.text, cached.fetched_at, cached.expires_at),
            )
            self._db.execute("DELETE FROM sts_failure WHERE domain = ?", (cached.domain,))

        await self._file.run(lambda: self._file.write(write))

    async def store_failure(self, domain: str, failure: FetchFailure) -> None:
        row = (
            domain,
            failure.id,
            failure.at,
            failure.status.value,
            failure.error,
            int(failure.temporary),
        )
        await self._file.run(
            lambda: self._db.execute(
                "INSERT OR REPLACE INTO sts_failure VALUES (?, ?, ?, ?, ?, ?)", row
            )
        )

    async def forget(self, domain: str | None = None) -> int:
        """Purge one domain's cached policy and failure, or all of them. Returns how many."""
        return await self._file.run(lambda: self._file.write(lambda: self._forget(domain)))

    def _forget(self, domain: str | None) -> int:
        if domain is None:
            count = self._db.execute("DELETE FROM sts_policy").rowcount
            self._db.execute("DELETE FROM sts_failure")
            return int(count)
        count = self._db.execute("DELETE FROM sts_policy WHERE domain = ?", (domain,)).rowcount
        self._db.execute("DELETE FROM sts_failure WHERE domain = ?", (domain,))
        return int(count)

    async def domains(self) -> Sequence[str]:
        def read() -> list[str]:
            return [row[0] for row in self._db.execute("SELECT domain FROM sts_policy ORDER BY 1")]

        return await self._file.run(read)
