"""Fixtures for the web UI tests: in-process (`site`) and in a real browser (test_browser.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from rig.plugin import rig
from rig.upstream import Upstream
from support.eitherbackend import either_backend, either_dsn, open_records, records
from web.site import Site, close_site, open_site

__all__ = [
    "either_backend",
    "either_dsn",
    "open_records",
    "records",
    "rig",
    "site",
    "upstream",
]


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream().start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
async def site(tmp_path: Path, upstream: Upstream) -> AsyncIterator[Site]:
    """The web UI in this process, with accounts alice (reviewer) and root (admin)."""
    opened = await open_site(tmp_path, upstream)
    opened.add_user("alice")
    opened.add_user("root", "admin")
    try:
        yield opened
    finally:
        await close_site(opened)
