"""Rows of the ``probe_results`` table on PostgreSQL: one per domain, the newest probe
replacing the one before (``INSERT ... ON CONFLICT DO UPDATE``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from psycopg import AsyncConnection

from gateway.store.postgres.tables import text_value
from gateway.store.probes import ProbeRecord

_UPSERT = (
    "INSERT INTO probe_results (domain, at, secure, summary, hosts) VALUES (%s, %s, %s, %s, %s)"
    " ON CONFLICT (domain) DO UPDATE SET at = excluded.at, secure = excluded.secure,"
    " summary = excluded.summary, hosts = excluded.hosts"
)


async def record(conn: AsyncConnection[Any], found: Sequence[ProbeRecord]) -> None:
    rows = [
        (
            probe.domain,
            probe.at,
            probe.secure,
            text_value(probe.summary),
            json.dumps([dict(h) for h in probe.hosts], sort_keys=True),
        )
        for probe in found
    ]
    if rows:
        async with conn.cursor() as cursor:
            await cursor.executemany(_UPSERT, rows)


async def last(conn: AsyncConnection[Any]) -> dict[str, ProbeRecord]:
    cursor = await conn.execute("SELECT domain, at, secure, summary, hosts FROM probe_results")
    return {
        domain: ProbeRecord(domain, at, bool(secure), summary, tuple(json.loads(hosts)))
        for domain, at, secure, summary, hosts in await cursor.fetchall()
    }
