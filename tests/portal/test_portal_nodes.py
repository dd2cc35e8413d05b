"""Two gateway nodes on one PostgreSQL database, each with its portal: a recipient asks for
the code on one and enters it on the other, and reads the message on either. The codes'
pepper (from the store key) and the cookie's key ([portal] secret_key) are the same on every
node; the attempts, the codes sent and the first view are the database's."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, expect
from web import mail

from portal.conftest import Live
from rig.gatewayproc import Gateway, start_gateway
from rig.ports import LOOPBACK, free_port
from rig.postgres import Postgres
from rig.rig import Rig
from rig.sharedstore import SharedStore
from rig.upstream import Upstream

pytestmark = pytest.mark.e2e

PORTAL_SECRET = secrets.token_hex(32)


@pytest.fixture(scope="module")
def nodes(
    rig: Rig, tmp_path_factory: pytest.TempPathFactory, postgres_server: Postgres
) -> Iterator[list[Live]]:
    """Started before the browser (Playwright's loop must not be running yet)."""
    if not postgres_server.running:
        postgres_server.start()
    database = postgres_server.create_database()
    upstream = Upstream().start()
    store = SharedStore(postgres_server.dsn(database))
    tmp_path = tmp_path_factory.mktemp("portal-nodes")
    started: list[Gateway] = []
    made: list[Live] = []
    try:
        for n in (1, 2):
            port = free_port()
            base = f"http://{LOOPBACK}:{port}"
            gateway = start_gateway(
                rig,
                tmp_path / f"node-{n}",
                upstream,
                store=store,
                portal={
                    "enabled": True,
                    "listen": f"{LOOPBACK}:{port}",
                    "public_url": base,
                    "secret_key": PORTAL_SECRET,
                },
                notify={"organisation": "Oak Primary School"},
            )
            started.append(gateway)
            gateway.proc.wait_event("portal listening", timeout=20)
            made.append(Live(gateway, base))
        yield made
    finally:
        for gateway in started:
            assert gateway.proc.stop() == 0, gateway.proc.output()
        upstream.close()
        postgres_server.drop_database(database)


def test_a_recipient_proves_the_address_on_one_node_and_reads_on_another(
    nodes: list[Live], browser: Browser
) -> None:
    one, two = nodes
    context = browser.new_context()
    page = context.new_page()
    raw = mail.message(to=["carer@nosts.test"], body="The plan for the weekend.\n")
    path, link_id = one.link("head@school.test", "carer@nosts.test", raw)
    page.goto(one.url(path))
    page.get_by_role("button", name="Email me a code").click()
    code = one.wait_code("carer@nosts.test")
    # The other node knows a code was just sent (one a minute, for the link, in the database).
    page.goto(two.url(path))
    page.get_by_role("button", name="Email me a new code").click()
    expect(page.get_by_role("status")).to_contain_text("less than a minute ago")
    page.fill("#code", code)
    page.get_by_role("button", name="Open the message").click()
    expect(page.locator("pre.body")).to_contain_text("The plan for the weekend.")
    page.goto(one.url(path + "/view"))  # the cookie is good on every node
    expect(page.locator("pre.body")).to_contain_text("The plan for the weekend.")
    [(hold_id,)] = one.gateway.query("SELECT hold_id FROM secure_links WHERE id = ?", (link_id,))
    events = one.events(hold_id)
    assert events.count("link-opened") == 1, events
    assert events.count("link-code-sent") == 1, events
    context.close()
