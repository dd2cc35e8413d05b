"""With 10,000 holds in the store, the held-mail pages read what they show and no more: a
bounded number of SQL statements, and of rows, whatever the store holds (counted on SQLite's
connection). A long trail and the audit search, on either backend."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from web.site import Site, open_site

from gateway.audit import events as audit
from gateway.runtime.serve import data_dir
from gateway.store import HeldRecipient, NewHold
from gateway.store.auditkey import load_audit_key
from gateway.store.records import AuditRecord
from gateway.store.sqlite import tables, trail
from gateway.web.message import TRAIL
from gateway.web.queue import PAGE
from rig.upstream import Upstream
from store.backends import Nodes

HOLDS = 10_000
STATUSES = ("held", "released", "rejected", "expired")


@dataclass
class Reads:
    statements: list[str] = field(default_factory=list)
    rows: int = 0


@contextmanager
def reads(site: Site) -> Iterator[Reads]:
    """What the hold store's connection runs and returns while the block runs."""
    seen = Reads()
    db = site.store.connection

    def row(cursor: Any, values: tuple[Any, ...]) -> tuple[Any, ...]:
        seen.rows += 1
        return values

    db.set_trace_callback(seen.statements.append)
    db.row_factory = row
    try:
        yield seen
    finally:
        db.set_trace_callback(None)
        db.row_factory = None


def seed(site: Site) -> None:
    """10,000 holds, each with two audit entries, written in one transaction."""
    db = site.store.connection
    now = site.clock()
    rows, records = [], []
    for n in range(HOLDS):
        hold_id = secrets.token_hex(8)
        domain = f"d{n % 50}.test"
        new = NewHold(
            key=f"seed:{n}",
            sender=f"staff{n % 97}@school.test",
            recipients=(HeldRecipient(f"a{n}@{domain}", domain, ("sts-no-record",)),),
            mail_options=(),
            message=b"",
            client="127.0.0.1",
            message_id=f"<{n}@school.test>",
            findings=("header",),
        )
        row = list(tables.hold_row(hold_id, now - HOLDS + n, new))
        row[2] = STATUSES[n % len(STATUSES)]
        rows.append(tuple(row))
        records += [
            AuditRecord("held", hold_id, "gateway", {"n": n}),
            AuditRecord("viewed", hold_id, "someone", {}),
        ]
    db.execute("BEGIN IMMEDIATE")
    db.executemany(tables.INSERT_HOLD, rows)
    trail.append(db, load_audit_key(site.settings, data_dir(site.settings)), now, records)
    db.execute("COMMIT")


async def test_the_queue_and_dashboard_read_one_page(site: Site) -> None:
    seed(site)
    async with site.client() as client:
        await site.sign_in(client, "alice")
        with reads(site) as queue:
            page = await client.get("/held?status=all&sort=sender")
        assert page.status_code == 200
        assert f"{HOLDS} messages match" in page.text
        assert len(re.findall(r'data-hold="', page.text)) == PAGE
        assert 'rel="next"' in page.text
        with reads(site) as later:
            second = await client.get("/held?status=all&sort=sender&page=2")
        assert f"Showing {PAGE + 1}" in second.text
        with reads(site) as dashboard:
            home = await client.get("/")
        assert re.search(r'id="count-held">\s*2500<', home.text)
    for seen in (queue, later, dashboard):
        assert len(seen.statements) <= 10, seen.statements
        assert seen.rows <= PAGE + 10


async def test_a_hold_page_reads_its_own_trail_only(site: Site) -> None:
    seed(site)
    hold = await site.hold()
    async with site.client() as client:
        await site.sign_in(client, "alice")
        with reads(site) as seen:
            page = await client.get(f"/held/{hold.id}")
    assert page.status_code == 200
    assert "viewed" in page.text  # opening it was recorded, and its trail shown
    assert len(seen.statements) <= 12, seen.statements
    assert seen.rows <= TRAIL + 10


@pytest.fixture
async def any_site(tmp_path: Path, upstream: Upstream, store_nodes: Nodes) -> AsyncIterator[Site]:
    """The site on a store of either backend (store_nodes closes it)."""
    opened = await open_site(tmp_path, upstream, hold_store=store_nodes.node)
    opened.add_user("alice")
    try:
        yield opened
    finally:
        await opened.relay.close()


async def test_a_long_trail_shows_its_newest_entries_and_says_so(any_site: Site) -> None:
    site = any_site
    hold = await site.hold()
    await site.store.append_audit([audit.viewed(hold, f"reviewer {n}") for n in range(TRAIL + 20)])
    async with site.client() as client:
        await site.sign_in(client, "alice")
        page = await client.get(f"/held/{hold.id}")
    assert f"The newest {TRAIL} of {TRAIL + 22} entries are shown" in page.text
    assert f"reviewer {TRAIL + 19}" in page.text  # newest first
    assert "reviewer 0<" not in page.text


async def test_the_audit_search_is_answered_by_the_query(any_site: Site) -> None:
    site = any_site
    hold = await site.hold()
    await site.store.append_audit([audit.viewed(hold, "Zoë Brown")])
    async with site.client() as client:
        await site.sign_in(client, "alice")
        found = await client.get("/audit", params={"q": "zoë", "hold": hold.id})
        none = await client.get("/audit", params={"q": "nobody-at-all"})
    assert "1 entry" in found.text
    assert "Zoë Brown" in found.text
    assert "0 entries" in none.text
    assert "Hash chain intact" in found.text


def test_seeded_rows_are_what_the_store_writes() -> None:
    # The seed writes through the store's own row builder, so the pages read real rows.
    new = NewHold("k", "s@x.test", (), (), b"", "", "", ())
    assert json.loads(tables.hold_row("id", 0.0, new)[11])["assessments"] == []
