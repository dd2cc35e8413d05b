"""Secure links on SQLite (``SecureLinks``): the table, and the methods ``SqliteStore`` takes
from ``SqliteLinks``.

Every change is one UPDATE whose WHERE clause is the compare-and-set the protocol names; the
audit entries and notices go in the same write transaction (BEGIN IMMEDIATE, which also
serialises another process on the same file), and nothing is written when the UPDATE matched
no row. Only digests of tokens and codes are stored (``core.securelink``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from gateway.core.securelink import CodeOutcome
from gateway.store import schema
from gateway.store.changes import SendLinks
from gateway.store.crypto import Sealer
from gateway.store.links import Link
from gateway.store.records import AuditRecord, NewNotice
from gateway.store.sqlite import outbox
from gateway.store.sqlite.database import Database

# One row per link; the codes sent, one row each, for the portal's limit per address (a
# recipient may have links from many holds). The partial index holds only the links the
# unopened sweep may still have to tell about, so the sweep does not read the rest.
TABLES = """
CREATE TABLE IF NOT EXISTS secure_links (
    id                  TEXT PRIMARY KEY,
    hold_id             TEXT NOT NULL,
    position            INTEGER NOT NULL,
    recipient           TEXT NOT NULL,
    token_digest        TEXT NOT NULL UNIQUE,
    created_at          REAL NOT NULL,
    created_by          TEXT NOT NULL,
    expires_at          REAL NOT NULL,
    code_digest         TEXT NOT NULL DEFAULT '',
    code_expires_at     REAL NOT NULL DEFAULT 0,
    code_attempts       INTEGER NOT NULL DEFAULT 0,
    codes_sent          INTEGER NOT NULL DEFAULT 0,
    code_sent_at        REAL,
    revoked_at          REAL,
    revoked_by          TEXT NOT NULL DEFAULT '',
    locked_at           REAL,
    opened_at           REAL,
    unopened_noticed_at REAL
);
CREATE INDEX IF NOT EXISTS secure_links_hold ON secure_links (hold_id, position);
CREATE INDEX IF NOT EXISTS secure_links_unopened ON secure_links (created_at, position)
    WHERE opened_at IS NULL AND revoked_at IS NULL AND unopened_noticed_at IS NULL;
CREATE TABLE IF NOT EXISTS link_codes (
    link_id             TEXT NOT NULL,
    number              INTEGER NOT NULL,   -- the link's first code, second, ...
    address             TEXT NOT NULL,
    sent_at             REAL NOT NULL,
    PRIMARY KEY (link_id, number)
);
CREATE INDEX IF NOT EXISTS link_codes_address ON link_codes (address, sent_at)
"""

_SELECT = f"SELECT {schema.LINK_COLUMNS} FROM secure_links"  # noqa: S608
_INSERT = (
    "INSERT INTO secure_links (id, hold_id, position, recipient, token_digest, created_at,"
    " created_by, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
# A right code is used up (one use, OWASP Multifactor Authentication Cheat Sheet). An outcome
# judged against a code also needs the code still there: of two tabs entering codes at once,
# one wins, even when the winner's right code left the attempts as they were. A lock keeps
# its first time.
_ENTERED = (
    "UPDATE secure_links SET code_attempts = ?, locked_at = COALESCE(locked_at, ?),"
    " code_digest = CASE WHEN ? THEN '' ELSE code_digest END"
    " WHERE id = ? AND code_attempts = ? AND (? OR code_digest != '')"
)
_UNOPENED = (
    f"{_SELECT} WHERE created_at < ? AND opened_at IS NULL AND revoked_at IS NULL"
    " AND unopened_noticed_at IS NULL ORDER BY created_at, position LIMIT ?"
)


def insert(db: sqlite3.Connection, hold_id: str, change: SendLinks) -> None:
    """The links of a decision, inside the transaction that made it."""
    db.executemany(
        _INSERT,
        [
            (link.id, hold_id, n, link.recipient, link.token_digest, change.at, change.by,
             link.expires_at)
            for n, link in enumerate(change.links)
        ],
    )  # fmt: skip


def get(db: sqlite3.Connection, link_id: str) -> Link | None:
    row = db.execute(f"{_SELECT} WHERE id = ?", (link_id,)).fetchone()
    return schema.link_from_row(row) if row else None


class SqliteLinks:
    """The ``SecureLinks`` half of ``SqliteStore``: it runs on the store's file and thread."""

    _file: Database
    _db: sqlite3.Connection
    _sealer: Sealer
    _clock: Callable[[], float]

    # SqliteStore's append to the audit chain, inside the caller's transaction.
    _append: Callable[[Sequence[AuditRecord]], None]

    async def _change(
        self,
        link_id: str,
        sql: str,
        values: tuple[Any, ...],
        audit: Sequence[AuditRecord],
        notices: Sequence[NewNotice],
        then: Callable[[Link], None] = lambda link: None,
    ) -> Link | None:
        """One compare-and-set on a link; its audit and notices only when it took."""

        def write() -> Link | None:
            if self._db.execute(sql, values).rowcount != 1:
                return None
            link = get(self._db, link_id)
            assert link is not None
            then(link)
            self._append(audit)
            outbox.enqueue(self._db, self._sealer, self._clock(), notices)
            return link

        return await self._file.run(lambda: self._file.write(write))

    async def link(self, link_id: str) -> Link | None:
        return await self._file.run(lambda: get(self._db, link_id))

    async def link_by_token(self, token_digest: str) -> Link | None:
        def read() -> Link | None:
            row = self._db.execute(f"{_SELECT} WHERE token_digest = ?", (token_digest,))
            found = row.fetchone()
            return schema.link_from_row(found) if found else None

        return await self._file.run(read)

    async def links_of(self, hold_id: str) -> Sequence[Link]:
        sql = f"{_SELECT} WHERE hold_id = ? ORDER BY position"  # one decision: one batch
        return await self._file.run(
            lambda: [schema.link_from_row(r) for r in self._db.execute(sql, (hold_id,))]
        )

    async def link_code_sent(
        self,
        link_id: str,
        expect_sent: int,
        digest: str,
        at: float,
        expires_at: float,
        audit: Sequence[AuditRecord] = (),
        notices: Sequence[NewNotice] = (),
    ) -> Link | None:
        sql = (
            "UPDATE secure_links SET code_digest = ?, code_expires_at = ?,"
            " codes_sent = codes_sent + 1, code_sent_at = ? WHERE id = ? AND codes_sent = ?"
        )

        def counted(link: Link) -> None:
            self._db.execute(
                "INSERT INTO link_codes (link_id, number, address, sent_at) VALUES (?, ?, ?, ?)",
                (link.id, link.code.sent, schema.code_address(link.recipient), at),
            )

        values = (digest, expires_at, at, link_id, expect_sent)
        return await self._change(link_id, sql, values, audit, notices, counted)

    async def link_code_entered(
        self,
        link_id: str,
        expect_attempts: int,
        outcome: CodeOutcome,
        at: float,
        audit: Sequence[AuditRecord] = (),
        notices: Sequence[NewNotice] = (),
    ) -> Link | None:
        values = schema.entered_values(link_id, expect_attempts, outcome, at)
        return await self._change(link_id, _ENTERED, values, audit, notices)

    async def link_opened(
        self,
        link_id: str,
        at: float,
        audit: Sequence[AuditRecord] = (),
        notices: Sequence[NewNotice] = (),
    ) -> Link | None:
        sql = "UPDATE secure_links SET opened_at = ? WHERE id = ? AND opened_at IS NULL"
        return await self._change(link_id, sql, (at, link_id), audit, notices)

    async def revoke_link(
        self,
        link_id: str,
        at: float,
        by: str,
        audit: Sequence[AuditRecord] = (),
        notices: Sequence[NewNotice] = (),
    ) -> Link | None:
        sql = (
            "UPDATE secure_links SET revoked_at = ?, revoked_by = ?"
            " WHERE id = ? AND revoked_at IS NULL"
        )
        return await self._change(link_id, sql, (at, by, link_id), audit, notices)

    async def unopened_links(self, made_before: float, limit: int = 50) -> Sequence[Link]:
        return await self._file.run(
            lambda: [
                schema.link_from_row(r) for r in self._db.execute(_UNOPENED, (made_before, limit))
            ]
        )

    async def link_unopened_noticed(
        self,
        link_id: str,
        at: float,
        audit: Sequence[AuditRecord] = (),
        notices: Sequence[NewNotice] = (),
    ) -> Link | None:
        sql = (
            "UPDATE secure_links SET unopened_noticed_at = ?"
            " WHERE id = ? AND unopened_noticed_at IS NULL"
        )
        return await self._change(link_id, sql, (at, link_id), audit, notices)

    async def codes_sent_to(self, address: str, since: float) -> int:
        sql = "SELECT count(*) FROM link_codes WHERE address = ? AND sent_at >= ?"
        values = (schema.code_address(address), since)
        return await self._file.run(lambda: int(self._db.execute(sql, values).fetchone()[0]))
