"""Several nodes on one store at once: the promises that hold on one node hold across nodes.
One unbroken audit chain after thousands of concurrent appends, one decision per hold, one
claim per release, disjoint claims on the queue and the outbox (and a lease that runs out is
taken over), and one hold (one queue entry) per message however many nodes store it at once.

Each node is a store of its own on the same data (on PostgreSQL its own pool, as another
machine's); the races are asyncio.gather of the nodes' calls, the leases run out by moving the
shared clock."""

from __future__ import annotations

import asyncio
from collections import Counter

from gateway.audit import events as audit
from gateway.store import (
    AuditRecord,
    Decide,
    HoldQuery,
    HoldStore,
    NewNotice,
    NewQueued,
    QueuedRecipient,
    Status,
)
from gateway.store.sqlite.outbox import NOTICE_LEASE
from store.backends import MESSAGE, Nodes, new_hold

HELD = frozenset({Status.HELD})
APPENDS = 3_000
RACES = 25  # holds (entries, notices) raced over in one test
LEASE = 300.0
POOL = 4  # connections a node's pool has (store_nodes.node)


async def nodes_of(store_nodes: Nodes, count: int) -> list[HoldStore]:
    return [await store_nodes.node() for _ in range(count)]


async def releasing(store: HoldStore, count: int) -> list[str]:
    """``count`` holds, each released by a reviewer and waiting for its delivery."""
    ids = []
    for _ in range(count):
        hold, _ = await store.hold(new_hold())
        decided = await store.update(hold.id, HELD, Decide(Status.RELEASING, 1.0, "Jo", "ok"))
        assert decided is not None
        ids.append(hold.id)
    return ids


def queued(key: str) -> NewQueued:
    return NewQueued(
        key=key,
        sender="dsl@school.test",
        recipients=(QueuedRecipient("a@partner.test", "partner.test"),),
        mail_options=(),
        message=MESSAGE,
        client="127.0.0.1",
        helo="mta.school.test",
        protocol="ESMTP",
        message_id="<m1@school.test>",
        flagged=True,
    )


async def test_thousands_of_appends_from_four_nodes_make_one_unbroken_chain(
    store_nodes: Nodes,
) -> None:
    nodes = await nodes_of(store_nodes, 4)
    # Each node as busy as its pool allows (its SMTP sessions, its web UI, its sweep): more
    # would wait for a connection past the pool's timeout, a 451 rather than a test.
    busy = [asyncio.Semaphore(2 * POOL) for _ in nodes]

    async def append(n: int) -> None:
        async with busy[n % 4]:
            record = AuditRecord("viewed", f"h{n}", f"node {n % 4}", {"n": n})
            await nodes[n % 4].append_audit([record])

    await asyncio.gather(*(append(n) for n in range(APPENDS)))
    for node in nodes:  # every node sees the one chain, whole
        assert await node.verify_audit() == (APPENDS, None)
    entries = await nodes[0].audit_entries()
    assert [e.seq for e in entries] == list(range(1, APPENDS + 1))
    assert sorted(e.data["n"] for e in entries) == list(range(APPENDS))
    assert {e.actor for e in entries} == {f"node {n}" for n in range(4)}
    assert await nodes[3].audit_head() == (APPENDS, entries[-1].hash)


async def test_two_nodes_deciding_the_same_hold_at_once_make_one_decision(
    store_nodes: Nodes,
) -> None:
    a, b = await nodes_of(store_nodes, 2)
    ids = [(await a.hold(new_hold()))[0].id for _ in range(RACES)]

    async def decide(node: HoldStore, hold_id: str, status: Status, who: str) -> str | None:
        record = AuditRecord(status.value, hold_id, who, {})
        changed = await node.update(hold_id, HELD, Decide(status, 2.0, who, "why"), [record])
        return who if changed is not None else None

    races = [
        asyncio.gather(
            decide(a, hold_id, Status.RELEASING, "Jo on A"),
            decide(b, hold_id, Status.REJECTED, "Al on B"),
        )
        for hold_id in ids
    ]
    outcomes = await asyncio.gather(*races)
    for hold_id, results in zip(ids, outcomes, strict=True):
        [winner] = [who for who in results if who is not None]
        hold = await b.get(hold_id)
        assert hold is not None
        assert hold.decided_by == winner
        assert hold.status is (Status.RELEASING if winner == "Jo on A" else Status.REJECTED)
    decisions = Counter(e.hold_id for e in await a.audit_entries())
    assert decisions == dict.fromkeys(ids, 1)  # the loser's entry was never written
    assert (await a.verify_audit())[1] is None


async def test_two_nodes_claiming_one_release_get_it_once_and_a_stale_claim_is_taken_over(
    store_nodes: Nodes,
) -> None:
    a, b = await nodes_of(store_nodes, 2)
    ids = await releasing(a, RACES)
    now = store_nodes.clock()
    races = [
        asyncio.gather(
            a.claim(hold_id, "a.test:1", now, now - LEASE),
            b.claim(hold_id, "b.test:1", now, now - LEASE),
        )
        for hold_id in ids
    ]
    for hold_id, claims in zip(ids, await asyncio.gather(*races), strict=True):
        [won] = [hold for hold in claims if hold is not None]
        assert (won.id, won.attempt_at) == (hold_id, now)
    # Claimed, and not yet stale: nobody else may start.
    assert await b.claim(ids[0], "b.test:1", now + 10, now + 10 - LEASE) is None
    # The claimer died; once its claim is stale, another node takes the release over.
    later = now + LEASE + 1
    taken = await b.claim(ids[0], "b.test:2", later, later - LEASE)
    assert taken is not None
    assert (taken.attempt_at, taken.attempt_by) == (later, "b.test:2")


async def test_two_nodes_claiming_the_queue_at_once_get_disjoint_entries(
    store_nodes: Nodes,
) -> None:
    a, b, c = await nodes_of(store_nodes, 3)
    ids = {(await a.enqueue(queued(f"q{n}")))[0].id for n in range(RACES)}
    now = store_nodes.clock()
    first, second = await asyncio.gather(
        a.claim_queued(now, now + LEASE, "a.test:1", limit=RACES),
        b.claim_queued(now, now + LEASE, "b.test:1", limit=RACES),
    )
    on_a, on_b = {e.id for e in first}, {e.id for e in second}
    assert not on_a & on_b
    assert on_a | on_b == ids
    assert await c.claim_queued(now + 10, now + 10 + LEASE, "c.test:1") == []  # all leased
    # A and B die; once their leases run out, C takes every entry over.
    store_nodes.clock.advance(LEASE + 1)
    later = store_nodes.clock()
    taken = await c.claim_queued(later, later + LEASE, "c.test:1", limit=RACES)
    assert {e.id for e in taken} == ids
    # A first claimer, back from the dead, cannot write over what C now owns.
    entry, owner = (first[0], "a.test:1") if first else (second[0], "b.test:1")
    late = await a.queue_progress(entry.id, owner, entry.recipients, later + 60, "")
    assert late is None
    done = await c.queue_progress(entry.id, "c.test:1", entry.recipients, later + 60, "")
    assert done is not None


async def test_two_nodes_taking_due_notices_at_once_get_disjoint_ones(
    store_nodes: Nodes,
) -> None:
    a, b = await nodes_of(store_nodes, 2)
    notices = [
        NewNotice("held", f"h{n}", "", (f"teacher{n}@school.test",), b"notice %d" % n)
        for n in range(RACES)
    ]
    await a.queue_notices(notices)
    now = store_nodes.clock()
    first, second = await asyncio.gather(a.due_notices(now, RACES), b.due_notices(now, RACES))
    on_a, on_b = {n.id for n in first}, {n.id for n in second}
    assert not on_a & on_b
    assert len(on_a | on_b) == RACES
    assert {n.message for n in [*first, *second]} == {n.message for n in notices}
    assert await b.due_notices(now + 1, RACES) == []  # claimed: nobody sends them twice
    # The node that claimed them died before it sent them: once the lease runs out they are
    # due again, for any node.
    store_nodes.clock.advance(NOTICE_LEASE + 1)
    again = await b.due_notices(store_nodes.clock(), RACES)
    assert {n.id for n in again} == on_a | on_b
    for notice in again:
        await b.notice_sent(notice.id)
    store_nodes.clock.advance(NOTICE_LEASE + 1)
    assert await a.due_notices(store_nodes.clock(), RACES) == []  # sent: never again


async def test_two_nodes_holding_the_same_message_at_once_make_one_hold(
    store_nodes: Nodes,
) -> None:
    a, b = await nodes_of(store_nodes, 2)
    keys = [f"mta-retry:{n}" for n in range(RACES)]

    async def hold(node: HoldStore, key: str) -> tuple[str, bool]:
        found, created = await node.hold(new_hold(key=key), lambda h: ([audit.held("Q1", h)], []))
        return found.id, created

    races = [asyncio.gather(hold(a, key), hold(b, key)) for key in keys]
    ids = []
    for (first, made_a), (second, made_b) in await asyncio.gather(*races):
        assert first == second
        assert [made_a, made_b].count(True) == 1
        assert await b.message(first) == MESSAGE  # the winner's body, whole
        ids.append(first)
    held_entries = Counter(e.hold_id for e in await a.audit_entries() if e.event == "held")
    assert held_entries == dict.fromkeys(ids, 1)
    assert await a.count_holds(HoldQuery()) == RACES


async def test_two_nodes_queueing_the_same_message_at_once_make_one_entry(
    store_nodes: Nodes,
) -> None:
    a, b = await nodes_of(store_nodes, 2)
    keys = [f"mta-retry:{n}" for n in range(RACES)]

    async def enqueue(node: HoldStore, key: str) -> tuple[str, bool]:
        entry, created = await node.enqueue(queued(key), [AuditRecord("queued", "", "gw", {})])
        return entry.id, created

    races = [asyncio.gather(enqueue(a, key), enqueue(b, key)) for key in keys]
    ids = []
    for (first, made_a), (second, made_b) in await asyncio.gather(*races):
        assert first == second
        assert [made_a, made_b].count(True) == 1
        assert await a.queued_message(first) == MESSAGE
        ids.append(first)
    entries = Counter(e.data["queue_id"] for e in await b.audit_entries())
    assert entries == dict.fromkeys(ids, 1)
    assert await b.queue_depth() == RACES
