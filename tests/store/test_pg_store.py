"""The shared hold store (PgStore) against the rig's PostgreSQL: what each of its methods does
that a reviewer, a sender or an operator would notice, and what a second node sees."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest

from gateway.errors import SchemaMismatch
from gateway.store import (
    AuditQuery,
    AuditRecord,
    Decide,
    DeliveryDone,
    Escalate,
    HeldRecipient,
    HoldOrder,
    HoldQuery,
    NewHold,
    NewNotice,
    NewQueued,
    ProbeRecord,
    QueuedRecipient,
    RecipientState,
    Status,
)
from gateway.store.crypto import Sealer
from gateway.store.postgres import Database, PgStore
from gateway.store.postgres.database import migrate
from gateway.store.postgres.outbox import NOTICE_LEASE
from gateway.store.postgres.store import JOURNAL_DAYS
from gateway.store.postgres.tables import MIGRATIONS

AUDIT_KEY = bytes(range(32))
BODY = b"Subject: Secret about a child\r\n\r\nDetails.\r\n"


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Node:
    store: PgStore
    clock: Clock


def held(
    key: str,
    sender: str = "head@school.test",
    to: tuple[str, ...] = ("officer@nosts.test",),
    reasons: tuple[str, ...] = ("sts-no-record",),
    subject: str = "",
    client: str = "127.0.0.1",
) -> NewHold:
    return NewHold(
        key=key,
        sender=sender,
        recipients=tuple(HeldRecipient(a, a.rpartition("@")[2], reasons) for a in to),
        mail_options=(),
        message=BODY,
        client=client,
        message_id="<m@school.test>",
        findings=("header",),
        subject=subject,
    )


def audit_of_hold(hold: object) -> tuple[list[AuditRecord], list[NewNotice]]:
    hold_id = getattr(hold, "id", "")
    notice = NewNotice("held", hold_id, "", ("head@school.test",), b"Your mail is held.")
    return [AuditRecord("held", hold_id, "gateway", {"size": len(BODY)})], [notice]


SEALER = Sealer(os.urandom(32))


async def open_node(dsn: str, clock: Clock) -> Node:
    store = PgStore(Database(dsn, pool_size=4), SEALER, AUDIT_KEY, clock)
    await store.open()
    return Node(store, clock)


@pytest.fixture
async def nodes(pg_dsn: str) -> AsyncIterator[tuple[Node, Node]]:
    """Two nodes on one migrated database, sharing a clock."""
    db = Database(pg_dsn)
    await db.open()
    await migrate(db, MIGRATIONS)
    await db.close()
    clock = Clock()
    first, second = await open_node(pg_dsn, clock), await open_node(pg_dsn, clock)
    try:
        yield first, second
    finally:
        await first.store.close()
        await second.store.close()


@pytest.fixture
def node(nodes: tuple[Node, Node]) -> Node:
    return nodes[0]


async def test_a_node_refuses_a_database_not_migrated(pg_dsn: str) -> None:
    store = PgStore(Database(pg_dsn), SEALER, AUDIT_KEY)
    with pytest.raises(SchemaMismatch, match="gateway store migrate"):
        await store.open()


async def test_a_hold_round_trips_and_its_body_is_gone_after_purge(
    nodes: tuple[Node, Node],
) -> None:
    a, b = nodes
    hold, created = await a.store.hold(held("k1"), audit_of_hold)
    assert created
    assert hold.status is Status.HELD
    assert await b.store.get(hold.id) == hold  # the other node sees it
    assert await b.store.message(hold.id) == BODY
    async with a.store.db.transaction() as conn:
        cursor = await conn.execute("SELECT body FROM hold_bodies WHERE hold_id = %s", (hold.id,))
        row = await cursor.fetchone()
    assert row is not None
    assert b"Secret" not in bytes(row[0])
    assert [e.event for e in await a.store.audit_entries()] == ["held"]
    assert [n.kind for n in await b.store.due_notices(a.clock.now)] == ["held"]
    assert await a.store.purge_body(hold.id, [AuditRecord("purged", hold.id, "gateway")])
    with pytest.raises(KeyError):
        await b.store.message(hold.id)
    assert not await b.store.purge_body(hold.id)
    purged = await b.store.get(hold.id)
    assert purged is not None
    assert purged.purged_at == a.clock.now
    assert await a.store.get("nothing") is None


async def test_one_key_is_one_hold_even_when_two_nodes_race(nodes: tuple[Node, Node]) -> None:
    a, b = nodes

    def then(hold: object) -> tuple[list[AuditRecord], list[NewNotice]]:
        return audit_of_hold(hold)

    results = await asyncio.gather(*(n.store.hold(held("same"), then) for n in (a, b, a, b)))
    assert len({hold.id for hold, _ in results}) == 1
    assert [created for _, created in results].count(True) == 1
    # The losers' consequences (made before their transactions) were thrown away unstored.
    assert await a.store.count_audit(AuditQuery()) == 1
    assert len(await a.store.due_notices(a.clock.now)) == 1
    assert await a.store.count_holds(HoldQuery()) == 1


async def test_free_text_with_nul_is_kept_as_a_replacement_character(node: Node) -> None:
    hold, _ = await node.store.hold(held("nul", subject="Re: a\x00b", client="evil\x00host"))
    again = await node.store.get(hold.id)
    assert again is not None
    assert (again.subject, again.client) == ("Re: a\ufffdb", "evil\ufffdhost")
    decided = await node.store.update(
        hold.id, frozenset({Status.HELD}), Decide(Status.REJECTED, 1.0, "jo", "no\x00pe")
    )
    assert decided is not None
    assert decided.decision == "no\ufffdpe"


async def test_one_decision_per_hold_when_two_nodes_decide_at_once(
    nodes: tuple[Node, Node],
) -> None:
    a, b = nodes
    hold, _ = await a.store.hold(held("cas"))
    held_only = frozenset({Status.HELD})
    outcomes = await asyncio.gather(
        a.store.update(hold.id, held_only, Decide(Status.RELEASING, 2.0, "amy", "ok"),
                       [AuditRecord("released", hold.id, "amy")]),
        b.store.update(hold.id, held_only, Decide(Status.REJECTED, 2.0, "bob", "no"),
                       [AuditRecord("rejected", hold.id, "bob")]),
    )  # fmt: skip
    [winner] = [o for o in outcomes if o is not None]
    expected = {"amy": "released", "bob": "rejected"}[winner.decided_by]
    assert [e.event for e in await a.store.audit_entries()] == [expected]  # the loser's: none
    escalated = await a.store.update(hold.id, frozenset(Status), Escalate(3.0))
    assert escalated is not None
    assert escalated.escalated_at == 3.0
    assert escalated.status is winner.status


async def test_a_release_is_claimed_by_one_node_until_the_claim_is_stale(
    nodes: tuple[Node, Node],
) -> None:
    a, b = nodes
    hold, _ = await a.store.hold(held("claim"))
    now = a.clock.now
    assert await a.store.claim(hold.id, "a:1", now, now - 60) is None  # not released yet
    await a.store.update(hold.id, frozenset({Status.HELD}), Decide(Status.RELEASING, now, "jo"))
    claims = await asyncio.gather(
        a.store.claim(hold.id, "a:1", now, now - 60), b.store.claim(hold.id, "b:1", now, now - 60)
    )
    taken = [c for c in claims if c is not None]
    assert len(taken) == 1
    assert taken[0].attempt_at == now
    owner = taken[0].attempt_by
    assert await a.store.claim(hold.id, owner, now + 1, now - 59) is None  # not even its own
    assert await b.store.claim(hold.id, "b:2", now + 1, now - 59, dead_owner="x:9") is None
    dead = await b.store.claim(hold.id, "b:2", now + 1, now - 59, dead_owner=owner)
    assert dead is not None
    assert dead.attempt_by == "b:2"
    stale = await a.store.claim(hold.id, "a:3", now + 120, now + 60)
    assert stale is not None
    assert stale.attempt_by == "a:3"
    done = await a.store.update(
        hold.id, frozenset({Status.RELEASING}), DeliveryDone(("officer@nosts.test",))
    )
    assert done is not None
    assert done.status is Status.RELEASED
    assert done.attempt_at is None
    assert await a.store.claim(hold.id, "a:4", now + 999, now + 998) is None


async def test_the_journal_remembers_each_recipient_once_for_a_week(
    pg_dsn: str, node: Node
) -> None:
    await node.store.record_relayed("m1", ["a@x.test", "b@x.test"], [AuditRecord("relayed", "",
                                    "gateway")])  # fmt: skip
    await node.store.record_relayed("m1", ["b@x.test", "c@x.test"])
    assert await node.store.relayed("m1") == {"a@x.test", "b@x.test", "c@x.test"}
    assert await node.store.relayed("m2") == frozenset()
    node.clock.now += JOURNAL_DAYS * 86400 + 1
    later = await open_node(pg_dsn, node.clock)  # a node starting a week later forgets them
    try:
        assert await later.store.relayed("m1") == frozenset()
    finally:
        await later.store.close()


async def test_the_audit_chain_verifies_and_names_an_edited_entry(
    nodes: tuple[Node, Node],
) -> None:
    a, b = nodes
    await asyncio.gather(
        *(
            n.store.append_audit([AuditRecord("viewed", f"h{i}", "amy", {"i": i})])
            for i in range(40)
            for n in (a, b)
        )
    )
    # More entries than verify reads in one batch, so later batches are checked too.
    await a.store.append_audit([AuditRecord("held", f"h{i}", "gateway") for i in range(2000)])
    assert await b.store.verify_audit() == (2080, None)
    head = await a.store.audit_head()
    assert head is not None
    assert head[0] == 2080
    entry = await b.store.audit_entry(2080)
    assert entry is not None
    assert entry.hash == head[1]
    assert await a.store.audit_entry(2081) is None
    assert await a.store.audit_events() == ["held", "viewed"]
    for seq, edit in [(1700, "UPDATE audit SET actor = 'mallory' WHERE seq = %s"),
                      (17, "DELETE FROM audit WHERE seq = %s")]:  # fmt: skip
        async with a.store.db.transaction() as conn:
            await conn.execute(edit, (seq,))
        count, problem = await a.store.verify_audit()
        assert problem is not None
        assert (count, problem.seq) == (2080 if seq == 1700 else 2079, seq)


AUDIT_CASES: list[tuple[AuditQuery, list[int]]] = [
    (AuditQuery(), [4, 3, 2, 1]),
    (AuditQuery(oldest_first=True, limit=2, offset=1), [2, 3]),
    (AuditQuery(hold_id="h1"), [3, 1]),
    (AuditQuery(event="rejected"), [4]),
    (AuditQuery(actor="ÉLO"), [2]),
    (AuditQuery(words=("gründe",)), [3]),  # non-ASCII data found as shown
    (AuditQuery(words=("h2", "NO")), [4]),
    (AuditQuery(words=("GATEWAY",)), [1]),
]


@pytest.mark.parametrize(("query", "seqs"), AUDIT_CASES)
async def test_audit_searches_filter_order_and_count(
    node: Node, query: AuditQuery, seqs: list[int]
) -> None:
    await node.store.append_audit([AuditRecord("held", "h1", "gateway", {"s": "x\x00y"})])
    node.clock.now += 10
    await node.store.append_audit([AuditRecord("viewed", "h2", "Hélo Ann\x00", {})])
    await node.store.append_audit([AuditRecord("released", "h1", "amy", {"why": "Gründe"})])
    await node.store.append_audit([AuditRecord("rejected", "h2", "amy", {"why": "No"})])
    assert await node.store.verify_audit() == (4, None)
    assert [e.seq for e in await node.store.audit_query(query)] == seqs
    unpaged = AuditQuery(query.hold_id, query.event, query.actor, query.words, query.since)
    assert await node.store.count_audit(unpaged) == len(await node.store.audit_query(unpaged))
    assert [e.seq for e in await node.store.audit_entries(since=node.clock.now)] == [2, 3, 4]


HOLD_CASES: list[tuple[HoldQuery, list[str]]] = [
    (HoldQuery.of(Status.HELD), ["first", "second", "third"]),
    (HoldQuery(order=HoldOrder.NEWEST, limit=2), ["third", "second"]),
    (HoldQuery(order=HoldOrder.NEWEST, limit=2, offset=2), ["first"]),
    (HoldQuery(order=HoldOrder.SENDER), ["second", "third", "first"]),
    (HoldQuery(order=HoldOrder.DOMAIN), ["first", "third", "second"]),
    (HoldQuery(order=HoldOrder.REASON), ["second", "first", "third"]),
    (HoldQuery(order=HoldOrder.OLDEST, offset=1), ["second", "third"]),
    (HoldQuery(recipient_domain="ONE.test"), ["first", "third"]),
    (HoldQuery(reason="dane-x"), ["second"]),
    (HoldQuery(sender="ÉD@"), ["first"]),
    (HoldQuery(created_before=1_700_000_010.0), ["first", "second"]),
    (HoldQuery(created_after=1_700_000_010.0), ["second", "third"]),
    (HoldQuery(decided_after=0.0), []),
    (HoldQuery(decided_before=1_700_000_000.0), ["first"]),
    (HoldQuery(escalated=False, purged=False), ["first", "second", "third"]),
    (HoldQuery(escalated=True), []),
    (HoldQuery.of(Status.REJECTED), []),
]


@pytest.mark.parametrize(("query", "names"), HOLD_CASES)
async def test_hold_queries_filter_sort_page_and_count(
    node: Node, query: HoldQuery, names: list[str]
) -> None:
    ids = {}
    for name, sender, to, reasons in [
        ("first", "Zéd@school.test", ("a@one.test",), ("sts-no-record",)),
        ("second", "amy@school.test", ("b@two.test",), ("dane-x",)),
        ("third", "bob@school.test", ("c@one.test",), ("sts-no-record",)),
    ]:
        hold, _ = await node.store.hold(held(name, sender, to, reasons))
        ids[hold.id] = name
        node.clock.now += 10
    assert [ids[h.id] for h in await node.store.holds(query)] == names
    unpaged = dataclasses.replace(query, limit=None, offset=0)
    assert await node.store.count_holds(query) == len(await node.store.holds(unpaged))


async def test_notices_are_leased_so_each_is_sent_once_across_nodes(
    nodes: tuple[Node, Node],
) -> None:
    a, b = nodes
    notices = [NewNotice("held", f"h{i}", "", (f"s{i}@school.test",), b"m%d" % i) for i in range(6)]
    await a.store.queue_notices(notices, [AuditRecord("notified", "", "gateway")])
    now = a.clock.now
    claimed = await asyncio.gather(a.store.due_notices(now, 4), b.store.due_notices(now, 4))
    ids = [n.id for batch in claimed for n in batch]
    assert len(ids) == 6 == len(set(ids))  # disjoint, all of them
    assert {n.message for batch in claimed for n in batch} == {b"m%d" % i for i in range(6)}
    assert await b.store.due_notices(now + NOTICE_LEASE - 1) == []  # leased
    first, second, *_ = claimed[0]
    await a.store.notice_sent(first.id, [AuditRecord("notice-sent", first.hold_id, "gateway")])
    await a.store.notice_failed(second.id, "451 later", now + 10)
    assert [n.id for n in await b.store.due_notices(now + 10)] == [second.id]
    # A node that claimed and died: the others send its notices once the lease runs out.
    again = await b.store.due_notices(now + NOTICE_LEASE + 11, limit=50)
    assert first.id not in {n.id for n in again}
    assert len(again) == 5
    assert {n.attempts for n in again if n.id == second.id} == {1}


def queued(key: str, *recipients: str) -> NewQueued:
    return NewQueued(
        key, "head@school.test",
        tuple(QueuedRecipient(r, r.rpartition("@")[2]) for r in recipients), (), BODY,
        "127.0.0.1", "mta.school.test", "ESMTP", "<q@school.test>", subject="Hi\x00",
        flagged=True,
    )  # fmt: skip


def outcome(state: RecipientState) -> Callable[[QueuedRecipient], QueuedRecipient]:
    return lambda r: QueuedRecipient(r.address, r.domain, r.options, state, "250 ok")


async def test_a_queue_entry_from_enqueue_to_finished(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    now = a.clock.now
    entry, created = await a.store.enqueue(queued("q1", "x@p.test", "y@p.test"),
                                           [AuditRecord("queued", "", "gateway")])  # fmt: skip
    assert created
    assert entry.next_at == now
    assert entry.flagged
    again, created = await b.store.enqueue(queued("q1", "x@p.test", "y@p.test"))
    assert (again.id, created) == (entry.id, False)
    [logged] = await a.store.audit_entries()
    assert logged.data["queue_id"] == entry.id
    assert (await a.store.queue_depth(), await a.store.next_queued_at()) == (1, now)
    assert await b.store.queued_message(entry.id) == BODY
    claims = await asyncio.gather(
        a.store.claim_queued(now, now + 60, "a:1"), b.store.claim_queued(now, now + 60, "b:1")
    )
    assert sorted(len(c) for c in claims) == [0, 1]
    owner = "a:1" if claims[0] else "b:1"
    x, y = entry.recipients
    partly = [outcome(RecipientState.DELIVERED)(x), y]
    assert await a.store.queue_progress(entry.id, "z:9", partly, now + 30, "451") is None
    waiting = await a.store.queue_progress(entry.id, owner, partly, now + 30, "451 try later")
    assert waiting is not None
    assert waiting.done_at is None
    assert waiting.attempts == 1
    assert waiting.lease_by == ""
    assert waiting.last_error == "451 try later"
    assert await a.store.claim_queued(now + 29, now + 90, "a:1") == []  # not due yet
    assert await b.store.retry_queued(entry.id, now + 1)
    [taken] = await b.store.claim_queued(now + 1, now + 90, "b:2")
    done = [outcome(RecipientState.DELIVERED)(r) for r in taken.recipients]
    finished = await b.store.queue_progress(entry.id, "b:2", done, now + 1, "",
                                            notices=[NewNotice("delivered", "", "", ("h@s",),
                                                               b"ok")])  # fmt: skip
    assert finished is not None
    assert finished.done_at == now
    with pytest.raises(KeyError):
        await a.store.queued_message(entry.id)
    assert not await a.store.retry_queued(entry.id, now)
    assert (await a.store.queue_depth(), await a.store.next_queued_at()) == (0, None)
    assert [e.id for e in await a.store.queue_entries()] == []
    assert [e.id for e in await a.store.queue_entries(finished=True)] == [entry.id]
    await a.store.record_relayed(f"queue:{entry.id}:p.test", ["x@p.test"])
    assert await a.store.prune_queued(now) == 0
    assert await a.store.prune_queued(now + 1) == 1
    assert await a.store.queued(entry.id) is None
    assert await a.store.relayed(f"queue:{entry.id}:p.test") == frozenset()


async def test_an_operator_purges_a_waiting_entry_and_its_lease_ends(node: Node) -> None:
    now = node.clock.now
    entry, _ = await node.store.enqueue(queued("q2", "x@p.test"))
    assert entry.subject == "Hi\x00"  # kept whole in the entry's JSON
    [taken] = await node.store.claim_queued(now, now + 60, "a:1")
    purged = await node.store.purge_queued(entry.id, [AuditRecord("purged", "", "admin")])
    assert purged is not None
    assert purged.done_at == now
    assert [r.state for r in purged.recipients] == [RecipientState.PURGED]
    assert await node.store.purge_queued(entry.id) is None
    assert await node.store.queue_progress(entry.id, "a:1", taken.recipients, now, "") is None
    with pytest.raises(KeyError):
        await node.store.queued_message(entry.id)


async def test_a_lease_that_ran_out_is_taken_over_by_another_node(
    nodes: tuple[Node, Node],
) -> None:
    a, b = nodes
    now = a.clock.now
    entry, _ = await a.store.enqueue(queued("q3", "x@p.test"))
    assert len(await a.store.claim_queued(now, now + 60, "gone-host:1")) == 1
    assert await b.store.claim_queued(now + 59, now + 120, "b:1") == []
    [taken] = await b.store.claim_queued(now + 61, now + 120, "b:1")
    assert (taken.id, taken.lease_by, taken.lease_until) == (entry.id, "b:1", now + 120)
    late = await a.store.queue_progress(entry.id, "gone-host:1", taken.recipients, now, "")
    assert late is None  # the first claimer's late report is refused


async def test_the_last_probe_of_each_domain_replaces_the_one_before(
    nodes: tuple[Node, Node],
) -> None:
    a, b = nodes
    await a.store.record_probes([
        ProbeRecord("one.test", 1.0, False, "no STARTTLS", ({"host": "mx.one.test"},)),
        ProbeRecord("two.test", 1.0, True, "DANE ok"),
    ])  # fmt: skip
    await b.store.record_probes([ProbeRecord("one.test", 2.0, True, "fixed\x00", ())])
    found = await a.store.last_probes()
    assert found == {
        "one.test": ProbeRecord("one.test", 2.0, True, "fixed\ufffd", ()),
        "two.test": ProbeRecord("two.test", 1.0, True, "DANE ok", ()),
    }


async def test_work_claimed_by_a_process_of_this_host_that_is_gone_is_taken_at_once(
    node: Node,
) -> None:
    gone = await asyncio.create_subprocess_exec("true")
    await gone.wait()
    dead = f"{socket.gethostname()}:{gone.pid}"
    now = node.clock.now
    await node.store.queue_notices([NewNotice("held", "h1", "", ("s@school.test",), b"m")])
    entry, _ = await node.store.enqueue(queued("q4", "x@p.test"))
    async with node.store.db.transaction() as conn:
        await conn.execute(
            "UPDATE outbox SET claimed_by = %s, next_at = %s", (dead, now + NOTICE_LEASE)
        )
    assert len(await node.store.claim_queued(now, now + 60, dead)) == 1
    assert [n.hold_id for n in await node.store.due_notices(now)] == ["h1"]
    [taken] = await node.store.claim_queued(now, now + 60, "b:1")
    assert (taken.id, taken.lease_by) == (entry.id, "b:1")
