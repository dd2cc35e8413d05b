"""Shared fixtures for the adapter tests. Everything runs on loopback; nothing here may ever
reach the system resolver or the internet."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from support.dnsserver import DnsServer
from support.eitherbackend import either_backend, either_dsn

__all__ = ["dns_server", "either_backend", "either_dsn"]


@pytest.fixture
async def dns_server() -> AsyncIterator[DnsServer]:
    """An empty DNS server; tests fill ``records`` and the failure sets as they need."""
    async with DnsServer() as server:
        yield server
