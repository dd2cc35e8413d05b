"""Sign-in under attack, through the real app (httpx over ASGI): a hundred wrong passwords sent
at once, and a client that claims another address in ``X-Forwarded-For``."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from argon2 import PasswordHasher

from gateway.accounts.users import FREE_FAILURES
from rig.upstream import Upstream
from web.site import PASSWORD, Site, close_site, open_site, token

pytestmark = pytest.mark.asyncio

PROXY = "192.0.2.80"
ATTACKER = "198.51.100.66"


class CountingHasher(PasswordHasher):
    """argon2id, cheap, counting how many passwords it checked."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)
        self.verified = 0
        self._lock = threading.Lock()

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        with self._lock:
            self.verified += 1
        return super().verify(hash, password)


@pytest.fixture
async def counted(tmp_path: Path, upstream: Upstream) -> AsyncIterator[tuple[Site, CountingHasher]]:
    hasher = CountingHasher()
    opened = await open_site(tmp_path, upstream, hasher)
    opened.add_user("alice")
    try:
        yield opened, hasher
    finally:
        await close_site(opened)


@pytest.fixture
async def proxied(tmp_path: Path, upstream: Upstream) -> AsyncIterator[Site]:
    opened = await open_site(tmp_path, upstream, trusted_proxies=[PROXY, "203.0.113.0/24"])
    opened.add_user("alice")
    try:
        yield opened
    finally:
        await close_site(opened)


async def _post_wrong(site: Site, form: httpx.Response, client: httpx.AsyncClient) -> int:
    response = await client.post(
        "/signin", data={"name": "alice", "password": "not the password", "csrf": token(form)}
    )
    return response.status_code


async def test_a_hundred_parallel_wrong_passwords_check_only_the_free_ones(
    counted: tuple[Site, CountingHasher],
) -> None:
    site, hasher = counted
    async with site.client() as client:
        form = await client.get("/signin")
        codes = await asyncio.gather(*(_post_wrong(site, form, client) for _ in range(100)))
        assert codes.count(401) == FREE_FAILURES["user"]
        assert codes.count(429) == 100 - FREE_FAILURES["user"]
        assert hasher.verified == FREE_FAILURES["user"]
        # The right password now waits like any other attempt, and is not even checked.
        refused = await site.sign_in(client, "alice")
        assert refused.status_code == 429
        assert hasher.verified == FREE_FAILURES["user"]
        assert "sg_session" not in client.cookies
        site.clock.advance(1.5)
        assert (await site.sign_in(client, "alice")).status_code == 303


async def test_a_success_does_not_count_against_the_address(
    counted: tuple[Site, CountingHasher],
) -> None:
    site, _ = counted
    async with site.client() as client:
        for _ in range(FREE_FAILURES["addr"] + 2):
            assert (await site.sign_in(client, "alice")).status_code == 303
            client.cookies.clear()
        assert (await site.sign_in(client, "nobody", "a wrong guess")).status_code == 401


async def _sign_in_as(site: Site, address: str, forwarded: str, name: str, password: str) -> int:
    async with site.client(address=address) as client:
        form = await client.get("/signin")
        response = await client.post(
            "/signin",
            data={"name": name, "password": password, "csrf": token(form)},
            headers={"x-forwarded-for": forwarded},
        )
        return response.status_code


async def test_x_forwarded_for_from_an_untrusted_client_is_ignored(site: Site) -> None:
    # A made-up address on every try would give a fresh address count each time.
    for n in range(FREE_FAILURES["addr"]):
        assert await _sign_in_as(site, ATTACKER, f"10.0.0.{n}", f"guess{n}", "wrong") == 401
    assert await _sign_in_as(site, ATTACKER, "10.0.1.1", "alice", PASSWORD) == 429
    failed = [e for e in await site.trail() if e.event == "sign-in-failed"]
    assert {e.data["client"] for e in failed} == {ATTACKER}


async def test_x_forwarded_for_from_a_trusted_proxy_names_the_client(proxied: Site) -> None:
    site = proxied
    # Two people behind the proxy: one guessing (what they put in front is not believed), the
    # other unaffected.
    for n in range(FREE_FAILURES["addr"]):
        forwarded = f"10.9.9.{n}, {ATTACKER}"
        assert await _sign_in_as(site, PROXY, forwarded, f"guess{n}", "wrong") == 401
    assert await _sign_in_as(site, PROXY, ATTACKER, "alice", PASSWORD) == 429
    # Through a chain of trusted proxies, the first untrusted hop from the right counts.
    assert await _sign_in_as(site, PROXY, f"{ATTACKER}, 203.0.113.9", "alice", PASSWORD) == 429
    assert await _sign_in_as(site, PROXY, "192.0.2.44", "alice", PASSWORD) == 303
    clients = {e.data["client"] for e in await site.trail() if e.event.startswith("sign")}
    assert clients == {ATTACKER, "192.0.2.44"}
