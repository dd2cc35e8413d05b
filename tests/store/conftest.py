"""Fixtures for the store tests: the in-process web UI and review model of tests/web."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from web.site import Site, close_site, open_site

from rig.upstream import Upstream


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream().start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
async def site(tmp_path: Path, upstream: Upstream) -> AsyncIterator[Site]:
    opened = await open_site(tmp_path, upstream)
    opened.add_user("alice")
    try:
        yield opened
    finally:
        await close_site(opened)
