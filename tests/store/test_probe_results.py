"""The last probe of each domain, as the web allowlist page reads it back: one row a domain,
the newest replacing the one before, kept across a reopen of the store."""

from __future__ import annotations

import os
from pathlib import Path

from gateway.store import ProbeRecord
from gateway.store.crypto import Sealer
from gateway.store.sqlite import SqliteStore


def open_store(folder: Path) -> SqliteStore:
    return SqliteStore(folder, Sealer(bytes(32)), audit_key=bytes(32))


async def test_the_newest_probe_of_a_domain_replaces_the_one_before(tmp_path: Path) -> None:
    host = {"host": "mx1.partner.test", "meets": False, "why": "no STARTTLS offered"}
    store = open_store(tmp_path)
    try:
        await store.record_probes(
            [
                ProbeRecord("partner.test", 100.0, True, "1 of 1 MX host(s) met the policy"),
                ProbeRecord("other.test", 100.0, True, "1 of 1 MX host(s) met the policy"),
            ]
        )
        failing = ProbeRecord(
            "partner.test", 200.0, False, "mx1.partner.test: no STARTTLS", (host,)
        )
        await store.record_probes([failing])
    finally:
        await store.close()

    store = open_store(tmp_path)
    try:
        found = await store.last_probes()
    finally:
        await store.close()
    assert sorted(found) == ["other.test", "partner.test"]
    assert found["partner.test"] == failing
    assert found["other.test"].secure is True
    assert os.stat(tmp_path / "held.sqlite3").st_mode & 0o077 == 0
