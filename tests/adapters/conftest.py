"""Shared fixtures for the adapter tests. Everything runs on loopback; nothing here may ever
reach the system resolver or the internet."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from support.dnsserver import DnsServer


@pytest.fixture
async def dns_server() -> AsyncIterator[DnsServer]:
    """An empty DNS server; tests fill ``records`` and the failure sets as they need."""
    async with DnsServer() as server:
        yield server
