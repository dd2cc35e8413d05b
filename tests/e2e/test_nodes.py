"""Two `gateway serve` nodes on one PostgreSQL database, as a deployment behind an MTA's two
next hops runs them: the same store and audit keys, ports of their own, one upstream.

Whatever one node holds, the other lists and releases (its CLI, its web UI, with a session
signed in on the first); two releases of the same hold at once, one on each node, give one
decision and one copy; a node killed mid-release leaves a lease the other takes over, and the
journal stops a second copy; a database restart under load loses nothing that got a 250 and
duplicates nothing. Every test ends with `gateway audit verify` passing on both nodes: one
unbroken chain.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from rig import Rig
from rig.cli import clean_env, gateway_script
from rig.gatewayproc import Gateway, Reply, message, start_gateway
from rig.heldcli import (
    INSECURE,
    REVIEW,
    SECURE,
    SENDER,
    Ran,
    ReviewCli,
    cli_for,
    hold_id,
    state,
)
from rig.ports import LOOPBACK, free_port
from rig.postgres import Postgres
from rig.sharedstore import SharedStore
from rig.upstream import Upstream

pytestmark = pytest.mark.e2e

WEB_SECRET = "two-nodes-one-session-secret-0123456789"  # the same on both nodes
REVIEWER_NAME = "dsl"
PASSWORD = "correct horse battery staple"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
TAKEOVER_WITHIN = 120.0  # a dead node's release lease expires, then a sweep finishes it


@dataclass(frozen=True)
class Node:
    gateway: Gateway
    web: str  # base URL of its [web] listener

    @property
    def cli(self) -> ReviewCli:
        return cli_for(self.gateway)


@pytest.fixture
def nodes(
    rig: Rig, upstream: Upstream, tmp_path: Path, shared_store: SharedStore
) -> Iterator[tuple[Node, Node]]:
    """Nodes A and B on the test's database, sweeping every second (so a release a dead node
    left is taken over soon after its lease expires)."""
    started: list[Node] = []
    try:
        for name in ("a", "b"):
            web = f"{LOOPBACK}:{free_port()}"
            gateway = start_gateway(
                rig,
                tmp_path / f"node-{name}",
                upstream,
                store=shared_store,
                review={**REVIEW, "sweep_interval": "1s"},
                web={"enabled": True, "listen": web, "secret_key": WEB_SECRET},
            )
            started.append(Node(gateway, f"http://{web}"))
        yield started[0], started[1]
        for node in started:
            verified = node.cli.run("audit", "verify")
            assert verified.code == 0, str(verified)
    finally:
        for node in started:
            code = node.gateway.proc.stop()
            if not node.gateway.proc.forced:
                assert code == 0, node.gateway.proc.output()


def send(node: Node, to: str, flagged: bool = True) -> tuple[Reply, bytes]:
    original = message(to=(to,), flagged=flagged)
    return node.gateway.send(SENDER, [to], original), original


def held_on(node: Node, to: str = INSECURE) -> tuple[str, bytes]:
    reply, original = send(node, to)
    return hold_id(reply), original


def one_copy(gateway: Gateway, original: bytes, recipient: str = INSECURE) -> None:
    [copy] = gateway.wait_relayed(1, of=original, timeout=20)
    assert copy.rcpt_tos == (recipient,)


def decisions(gateway: Gateway, hold: str) -> list[str]:
    return [e["event"] for e in state(gateway, hold)[1] if e["event"] in {"released", "rejected"}]


RELEASE = ("held", "release", "--reason", "Checked with the recipient by phone", "--by", "dsl")


def test_load_spread_over_two_nodes_is_held_or_relayed_once_and_seen_by_both(
    nodes: tuple[Node, Node],
) -> None:
    a = nodes[0]
    kinds = [(INSECURE, True), (SECURE, True), (SECURE, False)]
    sent = []
    for i in range(12):
        node = nodes[i % 2]
        to, flagged = kinds[i % 3]
        reply, original = send(node, to, flagged)
        assert reply.code == 250, reply
        sent.append((to, flagged, original))
    for to, _flagged, original in sent:
        if to == INSECURE:
            [hold] = a.gateway.holds(of=original)
            assert hold.status == "held"
            assert a.gateway.relayed(of=original) == []
        else:
            one_copy(a.gateway, original, SECURE)
            assert a.gateway.holds(of=original) == []
    listed = [{h["id"] for h in node.cli.holds()} for node in nodes]
    assert listed[0] == listed[1]
    assert len(listed[0]) == 4


def test_a_hold_made_on_a_is_released_from_the_cli_of_b(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    hold, original = held_on(a)
    ran = b.cli.run(*RELEASE[:2], hold, *RELEASE[2:])
    assert ran.code == 0, str(ran)
    assert ran.stdout == f"released {hold}: sent to {INSECURE}\n", str(ran)
    one_copy(a.gateway, original)
    assert decisions(a.gateway, hold) == ["released"]


def add_reviewer(node: Node) -> None:
    """A reviewer account, added through `node`: it lives in the database, for both nodes."""
    config = str(node.gateway.proc.config)
    added = subprocess.run(
        [
            str(gateway_script()),
            "users",
            "add",
            REVIEWER_NAME,
            "--role",
            "reviewer",
            "--config",
            config,
        ],
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
        check=False,
    )
    assert added.returncode == 0, added.stdout + added.stderr


def csrf(page: httpx.Response) -> str:
    match = CSRF.search(page.text)
    assert match, page.text
    return match.group(1)


def sign_in(client: httpx.Client, node: Node) -> None:
    form = client.get(f"{node.web}/signin")
    signed = client.post(
        f"{node.web}/signin",
        data={"name": REVIEWER_NAME, "password": PASSWORD, "csrf": csrf(form)},
    )
    assert signed.status_code in (302, 303), signed.text


def web_release(client: httpx.Client, node: Node, hold: str) -> httpx.Response:
    page = client.get(f"{node.web}/held/{hold}")
    assert page.status_code == 200, page.text
    return client.post(
        f"{node.web}/held/{hold}/release",
        data={"text": "Checked with the recipient", "confirmed": "yes", "csrf": csrf(page)},
    )


def test_signed_in_on_a_a_reviewer_releases_on_the_web_ui_of_b(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    add_reviewer(a)
    hold, original = held_on(a)
    with httpx.Client(timeout=30) as client:
        sign_in(client, a)
        # The load balancer sends the next requests to B: the session is in the database.
        done = web_release(client, b, hold)
    assert done.status_code == 303, done.text
    one_copy(a.gateway, original)
    assert decisions(b.gateway, hold) == ["released"]


def test_two_releases_of_every_hold_at_once_one_on_each_node_give_one_copy(
    nodes: tuple[Node, Node],
) -> None:
    a, b = nodes
    held = [held_on(nodes[i % 2]) for i in range(4)]
    commands = [(node, hold) for hold, _ in held for node in (a, b)]
    with ThreadPoolExecutor(len(commands)) as pool:
        ran = list(pool.map(lambda c: c[0].cli.run(*RELEASE[:2], c[1], *RELEASE[2:]), commands))
    for (hold, original), pair in zip(held, pairs(ran), strict=True):
        winners = [r for r in pair if r.code == 0]
        assert len(winners) == 1, "\n".join(map(str, pair))
        [loser] = [r for r in pair if r.code != 0]
        assert loser.stderr.strip(), str(loser)  # told what happened, not silence
        one_copy(a.gateway, original)
        assert decisions(a.gateway, hold) == ["released"]


def pairs(items: Sequence[Ran]) -> list[tuple[Ran, ...]]:
    return [tuple(items[i : i + 2]) for i in range(0, len(items), 2)]


def test_a_node_killed_mid_release_is_finished_by_the_other_once(
    nodes: tuple[Node, Node],
) -> None:
    a, b = nodes
    add_reviewer(a)
    hold, original = held_on(a)
    upstream = a.gateway.upstream
    aborted = upstream.aborted
    upstream.data_delay = 60.0  # B's release hands over the message, then waits on DATA
    with httpx.Client(timeout=90) as client, ThreadPoolExecutor(1) as pool:
        sign_in(client, b)
        pending = pool.submit(web_release, client, b, hold)
        assert upstream.wait_data(INSECURE, 20), b.gateway.proc.output()
        b.gateway.proc.kill()  # kill -9 of B, mid-release
        with pytest.raises(httpx.HTTPError):
            pending.result(30)
    assert upstream.wait_aborted(aborted + 1)
    upstream.data_delay = 0.0
    assert a.gateway.relayed(of=original) == []  # the upstream never committed B's copy
    # A's sweep takes over the release once B's lease has expired, and sends it once.
    [copy] = a.gateway.wait_relayed(1, of=original, timeout=TAKEOVER_WITHIN)
    assert copy.rcpt_tos == (INSECURE,)
    assert a.gateway.proc.wait_event("sweep", timeout=30, released=[hold])
    assert decisions(a.gateway, hold) == ["released"]
    assert len(a.gateway.relayed(of=original)) == 1


def test_a_database_restart_under_load_loses_nothing_accepted_and_duplicates_nothing(
    nodes: tuple[Node, Node], postgres_server: Postgres
) -> None:
    a, b = nodes
    kinds = [(INSECURE, True), (SECURE, True), (SECURE, False)]
    load = [(nodes[i % 2], *kinds[i % 3]) for i in range(30)]

    def one(item: tuple[Node, str, bool]) -> tuple[str, bool, bytes, Reply]:
        node, to, flagged = item
        reply, original = send(node, to, flagged)
        return to, flagged, original, reply

    with ThreadPoolExecutor(6) as pool:
        first = pool.map(one, load[:10])
        restart = pool.submit(postgres_server.restart, "fast")
        rest = pool.map(one, load[10:])
        done = [*first, *rest]
        restart.result(60)
    assert all(reply.code in (250, 451, 421) for *_, reply in done), done
    # What got a 4xx, the client's MTA sends again; now every message must be there once.
    again = []
    for to, flagged, original, reply in done:
        if reply.code != 250:
            node = a if len(again) % 2 else b
            again.append((to, flagged, original, retry(node, to, original)))
    for to, _flagged, original, reply in [*done, *again]:
        if reply.code != 250:
            continue
        if to == INSECURE:
            assert len(a.gateway.holds(of=original)) == 1, reply
            assert a.gateway.relayed(of=original) == []
        else:
            one_copy(a.gateway, original, SECURE)
            assert a.gateway.holds(of=original) == []


def retry(node: Node, to: str, original: bytes) -> Reply:
    for _ in range(20):
        reply = node.gateway.send(SENDER, [to], original)
        if reply.code == 250:
            return reply
        assert reply.code < 500, reply
        time.sleep(0.5)  # the MTA's retry interval, shortened
    return reply
