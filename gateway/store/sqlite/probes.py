"""Rows of the ``probe_results`` table (``tables.PROBE_RESULTS``): one per domain, the newest
probe replacing the one before."""

from __future__ import annotations

import json
import sqlite3

from gateway.store.probes import ProbeRecord

UPSERT = (
    "INSERT INTO probe_results (domain, at, secure, summary, hosts) VALUES (?,?,?,?,?)"
    " ON CONFLICT (domain) DO UPDATE SET at = excluded.at, secure = excluded.secure,"
    " summary = excluded.summary, hosts = excluded.hosts"
)
SELECT = "SELECT domain, at, secure, summary, hosts FROM probe_results"


def record(db: sqlite3.Connection, probe: ProbeRecord) -> None:
    hosts = json.dumps([dict(h) for h in probe.hosts], sort_keys=True)
    db.execute(UPSERT, (probe.domain, probe.at, int(probe.secure), probe.summary, hosts))


def last(db: sqlite3.Connection) -> dict[str, ProbeRecord]:
    found = {}
    for domain, at, secure, summary, hosts in db.execute(SELECT):
        found[domain] = ProbeRecord(domain, at, bool(secure), summary, tuple(json.loads(hosts)))
    return found
