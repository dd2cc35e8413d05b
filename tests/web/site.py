"""The review web UI in this process: the real app, store, review model and relay, driven with
httpx through ASGI, on a clock the test moves. A recording upstream takes what is released."""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from argon2 import PasswordHasher

from gateway.accounts.users import USERS_DB, Accounts
from gateway.audit import events as audit
from gateway.config import loader
from gateway.config.settings import Settings
from gateway.core.auditchain import Entry
from gateway.delivery.deliver import Delivery
from gateway.delivery.smarthost import Smarthost
from gateway.review.model import Review
from gateway.runtime.parts import data_dir, open_relay
from gateway.runtime.webui import build_web
from gateway.store import HeldRecipient, Hold, HoldFacts, HoldStore, NewHold
from gateway.store.crypto import Sealer, load_key
from gateway.store.sqlite import SqliteStore
from gateway.store.sqlite.accounts import accounts_store
from rig.upstream import Upstream
from support.fakes import FakeClock
from web import mail

PASSWORD = "correct horse battery staple"
CLIENT = "192.0.2.10"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
METRICS_TOKEN = "m" * 40


def write_config(folder: Path, upstream_port: int, **web: object) -> Path:
    lines = [
        "[smtp]",
        'hostname = "gateway.test"',
        "[relay]",
        'host = "127.0.0.1"',
        f"port = {upstream_port}",
        "timeout = 10.0",
        "[store]",
        'data_dir = "data"',
        "[notify]",
        'from = "postmaster@gateway.test"',
        'organisation = "Oak Primary School"',
        "[review]",
        'reviewers = ["dsl@school.test"]',
        "[web]",
        f'metrics_token = "{METRICS_TOKEN}"',
    ]
    lines += [f"{key} = {value!r}".replace("'", '"') for key, value in web.items()]
    path = folder / "gateway.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class Site:
    settings: Settings
    store: SqliteStore  # or, when open_site was given one, any HoldStore
    relay: Smarthost
    review: Review
    accounts: Accounts
    upstream: Upstream
    clock: FakeClock
    transport: httpx.ASGITransport

    def client(self, https: bool = False, address: str = CLIENT) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.transport.app, client=(address, 50000))
        scheme = "https" if https else "http"
        return httpx.AsyncClient(transport=transport, base_url=f"{scheme}://gateway.test")

    def add_user(self, name: str, role: str = "reviewer", password: str = PASSWORD) -> None:
        self.accounts.add(name, role, password)

    async def sign_in(
        self, client: httpx.AsyncClient, name: str, password: str = PASSWORD, next_: str = "/"
    ) -> httpx.Response:
        form = await client.get("/signin")
        return await client.post(
            "/signin",
            data={"name": name, "password": password, "csrf": token(form), "next": next_},
        )

    async def hold(
        self,
        raw: bytes | None = None,
        sender: str = "head@school.test",
        to: tuple[str, ...] = ("officer@nosts.test",),
        reasons: tuple[str, ...] = ("sts-no-record",),
        subject: str = "",
        facts: HoldFacts | None = None,
    ) -> Hold:
        raw = raw if raw is not None else mail.message(sender=sender, to=to)
        recipients = tuple(HeldRecipient(a, a.rpartition("@")[2], reasons) for a in to)
        new = NewHold(
            key=f"test:{time.monotonic_ns()}",
            sender=sender,
            recipients=recipients,
            mail_options=(),
            message=raw,
            client="127.0.0.1",
            message_id="<test@school.test>",
            findings=("header",),
            subject=subject,
            facts=facts or HoldFacts(),
        )
        hold, created = await self.store.hold(
            new, lambda h: ([audit.held("Q1", h, sender=sender)], [])
        )
        assert created
        return hold

    async def trail(self) -> list[Entry]:
        return list(await self.review.audit_entries())


def token(page: httpx.Response) -> str:
    found = CSRF.search(page.text)
    assert found, f"no CSRF token on {page.url}"
    return found.group(1)


def cheap_hasher() -> PasswordHasher:
    """argon2id still, but cheap: the tests sign in often (the real cost is tested elsewhere)."""
    return PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


async def open_site(
    folder: Path,
    upstream: Upstream,
    hasher: PasswordHasher | None = None,
    hold_store: Callable[[FakeClock], Awaitable[HoldStore]] | None = None,
    **web: object,
) -> Site:
    """The site on its own SQLite store, or on the one ``hold_store`` opens on the site's
    clock (store.backends: either backend)."""
    settings = loader.load(write_config(folder, upstream.port, **web), environ={})
    clock = FakeClock(time.time())
    folder = data_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    if hold_store is None:
        store: HoldStore = SqliteStore(folder, Sealer(load_key(settings, folder)), clock)
    else:
        store = await hold_store(clock)
    relay = open_relay(settings)
    review = Review(
        settings, store, Delivery(relay, store, "gateway.test"), "gateway.test", clock=clock
    )
    hasher = hasher or cheap_hasher()
    records = accounts_store(folder / USERS_DB)
    app = build_web(settings, review, store, None, clock=clock, hasher=hasher, records=records)
    accounts = Accounts(records, clock, hasher)
    return Site(
        settings,
        store,  # type: ignore[arg-type]
        relay,
        review,
        accounts,
        upstream,
        clock,
        httpx.ASGITransport(app=app),
    )


async def close_site(site: Site) -> None:
    await site.relay.close()
    await site.store.close()
