"""The queue runner delivers several entries at once (up to ``queue.PARALLEL``), never more,
each exactly once; one entry whose attempt fails does not hold up the others."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest
from store.backends import Nodes

from gateway.config import loader
from gateway.delivery import queue as queue_module
from gateway.delivery.deliver import Delivery
from gateway.delivery.queue import PARALLEL, QueueRunner
from gateway.delivery.transport import Sent, Transaction
from gateway.store import HoldStore, NewQueued, QueuedRecipient, RecipientState
from support.clock import Clock
from support.transports import FakeTransport

SENDER = "dsl@school.test"
BODY = b"From: dsl@school.test\r\nSubject: Child at risk\r\nX-Safeguarding: yes\r\n\r\nSecret\r\n"
OWNER = "gw.test:1"
GUARD = 60.0  # seconds: a runner that sent one at a time would wait here forever


@dataclass
class Gate(FakeTransport):
    """Holds every send until ``PARALLEL`` are in flight at once, then lets all go."""

    in_flight: int = 0
    most: int = 0
    full: asyncio.Event = field(default_factory=asyncio.Event)

    async def send(self, transaction: Transaction) -> Sent:
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        if self.in_flight == PARALLEL:
            self.full.set()
        try:
            await self.full.wait()
            return await super().send(transaction)
        finally:
            self.in_flight -= 1


async def enqueue(store: HoldStore, recipient: str) -> str:
    new = NewQueued(
        key=f"k:{recipient}",
        sender=SENDER,
        recipients=(QueuedRecipient(recipient, recipient.split("@")[1]),),
        mail_options=(),
        message=BODY,
        client="127.0.0.1",
        helo="mta.school.test",
        protocol="ESMTP",
        message_id="<m1@school.test>",
        findings=("header:X-Safeguarding",),
        flagged=True,
    )
    entry, _ = await store.enqueue(new)
    return entry.id


CLOCK = Clock()


@pytest.fixture
async def store(store_nodes: Nodes) -> HoldStore:
    return await store_nodes.node(CLOCK)


def runner(store: HoldStore, transport: FakeTransport) -> QueueRunner:
    settings = loader.load(None, environ={"GATEWAY_REVIEW_REVIEWERS": "lead@school.test"})
    delivery = Delivery(transport, store, "gw")
    return QueueRunner(store, delivery, settings, "gw", CLOCK, owner=OWNER)


async def test_up_to_parallel_entries_are_delivered_at_once_each_exactly_once(
    store: HoldStore,
) -> None:
    count = PARALLEL + PARALLEL // 2 + 3
    recipients = [f"r{n}@partner{n % 3}.test" for n in range(count)]
    ids = [await enqueue(store, r) for r in recipients]
    gate = Gate()
    async with asyncio.timeout(GUARD):
        assert await runner(store, gate).run_due() == count
    assert gate.most == PARALLEL
    assert sorted(r for (r,) in gate.received) == sorted(recipients)
    for queue_id in ids:
        entry = await store.queued(queue_id)
        assert entry is not None
        assert [r.state for r in entry.recipients] == [RecipientState.DELIVERED]
    assert await store.queue_depth() == 0


async def test_more_entries_than_one_claim_are_all_delivered(
    store: HoldStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(queue_module, "CLAIM", 3)
    recipients = [f"r{n}@partner.test" for n in range(10)]
    for r in recipients:
        await enqueue(store, r)
    transport = FakeTransport()
    assert await runner(store, transport).run_due() == 10
    assert sorted(r for (r,) in transport.received) == sorted(recipients)


async def test_one_failed_attempt_does_not_stop_the_others(store: HoldStore) -> None:
    ids = [await enqueue(store, f"r{n}@partner.test") for n in range(3)]
    real = store.queue_progress

    async def fail_for_the_first(queue_id: str, *args: object, **kwargs: object) -> object:
        if queue_id == ids[0]:
            raise OSError("the disk is full")
        return await real(queue_id, *args, **kwargs)  # type: ignore[arg-type]

    store.queue_progress = fail_for_the_first  # type: ignore[method-assign,assignment]
    transport = FakeTransport()
    with pytest.raises(OSError, match="disk is full"):
        await runner(store, transport).run_due()
    for queue_id in ids[1:]:
        entry = await store.queued(queue_id)
        assert entry is not None
        assert entry.recipients[0].state is RecipientState.DELIVERED
    first = await store.queued(ids[0])
    assert first is not None
    assert first.done_at is None  # tried again when its lease runs out
    assert len(transport.received) == 3


async def test_one_run_starts_a_bounded_number_and_the_next_run_takes_the_rest(
    store: HoldStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stop waits for the run in progress: it must not go on while mail keeps arriving.
    monkeypatch.setattr(queue_module, "CLAIM", 3)
    monkeypatch.setattr(queue_module, "ROUND", 5)
    recipients = [f"r{n}@partner.test" for n in range(10)]
    for r in recipients:
        await enqueue(store, r)
    transport = FakeTransport()
    queue_runner = runner(store, transport)
    first = await queue_runner.run_due()
    assert 5 <= first < 10
    assert first + await queue_runner.run_due() == 10
    assert sorted(r for (r,) in transport.received) == sorted(recipients)
