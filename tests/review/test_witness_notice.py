"""The audit trail's head sent to its witnesses ([audit] witnesses): at start, then once every
[audit] witness_every, through the outbox and a real upstream on loopback; the witness file
remembers when, so a restart does not send it again early."""

from __future__ import annotations

import email
import email.policy
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from store.backends import Nodes

from gateway.audit import events as audit
from gateway.audit.witness import Witness, last_sent
from gateway.config import loader
from gateway.core.auditchain import Head
from gateway.delivery.deliver import Delivery
from gateway.delivery.smarthost import Smarthost
from gateway.review.model import Review
from gateway.review.notices import audit_head_notice
from gateway.store import HoldStore
from rig.upstream import Upstream
from support.clock import Clock

DAY = 86400.0
DPO = "dpo@school.test"


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream().start()
    yield server
    server.close()


@pytest.fixture
async def parts(
    store_nodes: Nodes, upstream: Upstream
) -> AsyncIterator[tuple[Review, HoldStore, Clock]]:
    clock = Clock()
    settings = loader.load(
        None,
        environ={
            "GATEWAY_RELAY_PORT": str(upstream.port),
            "GATEWAY_RELAY_TIMEOUT": "5",
            "GATEWAY_NOTIFY_FROM": "gateway@school.test",
        },
    )
    store = await store_nodes.node(clock)
    relay = Smarthost(settings.relay, "gateway.school.test")
    review = Review(settings, store, Delivery(relay, store, "gw.test"), "gw.test", clock)
    await store.append_audit([audit.signed_in("jo", "127.0.0.1")])  # a trail with a head
    yield review, store, clock
    await relay.close()


def witness(store: HoldStore, clock: Clock, path: Path) -> Witness:
    async def send(head: Head, at: float) -> None:
        sender = "gateway@school.test"
        notice = audit_head_notice(sender, "gw.test", [DPO], head.seq, head.hash, at)
        await store.queue_notices([notice])

    return Witness(store, path, clock, send=send, send_every=DAY)


async def test_the_head_goes_to_the_witnesses_at_start_then_daily(
    parts: tuple[Review, HoldStore, Clock], upstream: Upstream, tmp_path: Path
) -> None:
    review, store, clock = parts
    path = tmp_path / "audit-witness.log"
    keeper = witness(store, clock, path)

    head = await keeper.observe("start")
    assert head is not None
    assert await review.drain_notices() == 1
    (sent,) = upstream.wait_for(1)
    assert sent.rcpt_tos == (DPO,)
    notice = email.message_from_bytes(sent.data, policy=email.policy.default)
    assert notice["Subject"] == f"Audit trail head {head.seq} at gw.test"
    assert f"gateway audit verify --head {head.seq}:{head.hash}" in notice.get_content()

    clock.now += DAY / 2  # not due again yet, nor after a restart that reads the file
    await keeper.observe("interval")
    restarted = witness(store, clock, path)
    await restarted.observe("start")
    assert await review.drain_notices() == 0
    assert last_sent(path) == pytest.approx(clock.now - DAY / 2, abs=1)

    clock.now += DAY / 2
    later = await restarted.observe("interval")
    assert await review.drain_notices() == 1
    assert later is not None
    assert len(upstream.wait_for(2)) == 2
    assert f"--head {later.seq}:{later.hash}\r\n" in upstream.messages[-1].data.decode()
