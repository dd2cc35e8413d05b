"""Secure links on PostgreSQL (``SecureLinks``): the methods ``PgStore`` takes from ``PgLinks``.

Every change is one UPDATE whose WHERE clause is the compare-and-set the protocol names. Two
nodes changing the same link at once: the second UPDATE waits on the row lock, then tests its
WHERE clause again against the row the first committed (READ COMMITTED, PostgreSQL docs 13.2.1)
and matches nothing; it then writes neither audit entries nor notices. The SQL is the embedded
backend's (``sqlite.links``) with PostgreSQL's placeholders; free text through ``text_value``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from psycopg import AsyncConnection

from gateway.core.securelink import CodeOutcome
from gateway.store import schema
from gateway.store.changes import SendLinks
from gateway.store.links import Link
from gateway.store.postgres.database import Database
from gateway.store.postgres.tables import text_value
from gateway.store.records import AuditRecord, NewNotice

_RETURNING = f" RETURNING {schema.LINK_COLUMNS}"
_SELECT = f"SELECT {schema.LINK_COLUMNS} FROM secure_links"  # noqa: S608
_INSERT = (
    "INSERT INTO secure_links (id, hold_id, position, recipient, token_digest, created_at,"
    " created_by, expires_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
)
_CODE_SENT = (
    "UPDATE secure_links SET code_digest = %s, code_expires_at = %s,"
    " codes_sent = codes_sent + 1, code_sent_at = %s WHERE id = %s AND codes_sent = %s"
)
# As on SQLite: a right code is used up, and an outcome judged against a code needs it there.
_ENTERED = (
    "UPDATE secure_links SET code_attempts = %s, locked_at = COALESCE(locked_at, %s),"
    " code_digest = CASE WHEN %s THEN '' ELSE code_digest END"
    " WHERE id = %s AND code_attempts = %s AND (%s OR code_digest != '')"
)
_OPENED = "UPDATE secure_links SET opened_at = %s WHERE id = %s AND opened_at IS NULL"
_REVOKED = (
    "UPDATE secure_links SET revoked_at = %s, revoked_by = %s WHERE id = %s AND revoked_at IS NULL"
)
_NOTICED = (
    "UPDATE secure_links SET unopened_noticed_at = %s WHERE id = %s AND unopened_noticed_at IS NULL"
)
_UNOPENED = (
    f"{_SELECT} WHERE created_at < %s AND opened_at IS NULL AND revoked_at IS NULL"
    " AND unopened_noticed_at IS NULL ORDER BY created_at, position LIMIT %s"
)


async def insert(conn: AsyncConnection[Any], hold_id: str, change: SendLinks) -> None:
    """The links of a decision, inside the transaction that made it."""
    async with conn.cursor() as cursor:
        await cursor.executemany(
            _INSERT,
            [
                (link.id, hold_id, n, text_value(link.recipient), link.token_digest, change.at,
                 text_value(change.by), link.expires_at)
                for n, link in enumerate(change.links)
            ],
        )  # fmt: skip


class Writing(Protocol):
    """What a write transaction of ``PgStore`` offers (its ``_Work``)."""

    conn: AsyncConnection[Any]

    def append(self, records: Sequence[AuditRecord]) -> None: ...

    async def notify(self, notices: Sequence[NewNotice]) -> None: ...


class PgLinks:
    """The ``SecureLinks`` half of ``PgStore``."""

    db: Database
    # PgStore's write transaction: the audit chain and the outbox in the same transaction.
    _write: Callable[[], AbstractAsyncContextManager[Writing]]

    async def _change(
        self,
        sql: str,
        values: tuple[Any, ...],
        audit: Sequence[AuditRecord],
        notices: Sequence[NewNotice],
        code_to: bool = False,
    ) -> Link | None:
        """One compare-and-set on a link; its audit and notices only when it took
        (``code_to``: and the code sent counted under the recipient's address)."""
        async with self._write() as work:
            found = await (await work.conn.execute(sql + _RETURNING, values)).fetchone()
            if found is None:
                return None
            link = schema.link_from_row(found)
            if code_to:
                await work.conn.execute(
                    "INSERT INTO link_codes (link_id, number, address, sent_at)"
                    " VALUES (%s, %s, %s, %s)",
                    (
                        link.id,
                        link.code.sent,
                        schema.code_address(link.recipient),
                        link.code.sent_at,
                    ),
                )
            await work.notify(notices)
            work.append(audit)
        return link

    async def _one(self, where: str, value: str) -> Link | None:
        async with self.db.transaction() as conn:
            found = await (await conn.execute(f"{_SELECT} WHERE {where} = %s", (value,))).fetchone()
        return schema.link_from_row(found) if found else None

    async def _many(self, sql: str, values: tuple[Any, ...]) -> list[Link]:
        async with self.db.transaction() as conn:
            rows = await (await conn.execute(sql, values)).fetchall()
        return [schema.link_from_row(row) for row in rows]

    async def link(self, link_id: str) -> Link | None:
        return await self._one("id", link_id)

    async def link_by_token(self, token_digest: str) -> Link | None:
        return await self._one("token_digest", token_digest)

    async def links_of(self, hold_id: str) -> Sequence[Link]:
        sql = f"{_SELECT} WHERE hold_id = %s ORDER BY position"  # one decision: one batch
        return await self._many(sql, (hold_id,))

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
        values = (digest, expires_at, at, link_id, expect_sent)
        return await self._change(_CODE_SENT, values, audit, notices, code_to=True)

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
        return await self._change(_ENTERED, values, audit, notices)

    async def link_opened(
        self,
        link_id: str,
        at: float,
        audit: Sequence[AuditRecord] = (),
        notices: Sequence[NewNotice] = (),
    ) -> Link | None:
        return await self._change(_OPENED, (at, link_id), audit, notices)

    async def revoke_link(
        self,
        link_id: str,
        at: float,
        by: str,
        audit: Sequence[AuditRecord] = (),
        notices: Sequence[NewNotice] = (),
    ) -> Link | None:
        return await self._change(_REVOKED, (at, text_value(by), link_id), audit, notices)

    async def unopened_links(self, made_before: float, limit: int = 50) -> Sequence[Link]:
        return await self._many(_UNOPENED, (made_before, limit))

    async def link_unopened_noticed(
        self,
        link_id: str,
        at: float,
        audit: Sequence[AuditRecord] = (),
        notices: Sequence[NewNotice] = (),
    ) -> Link | None:
        return await self._change(_NOTICED, (at, link_id), audit, notices)

    async def codes_sent_to(self, address: str, since: float) -> int:
        sql = "SELECT count(*) FROM link_codes WHERE address = %s AND sent_at >= %s"
        async with self.db.transaction() as conn:
            found = await (
                await conn.execute(sql, (schema.code_address(address), since))
            ).fetchone()
        return int(found[0]) if found else 0
