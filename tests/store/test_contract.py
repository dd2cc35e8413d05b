"""What every hold store does alike, on SQLite and on PostgreSQL: typed changes applied only from
the expected status, queries that filter, sort, page and count in the store, a body that is
gone once purged, one hold per message, the relay journal, and a trail that names the entry
someone edited."""

from __future__ import annotations

from dataclasses import replace

import pytest
import structlog

from gateway.audit import events as audit
from gateway.core.auditchain import Head
from gateway.store import (
    AuditRecord,
    Decide,
    DeliveryDone,
    DeliveryPending,
    Escalate,
    Hold,
    HoldOrder,
    HoldQuery,
    HoldStore,
    Status,
)
from gateway.store.assessment import AssessmentRecord, DaneHostRecord, HoldFacts
from gateway.store.records import HeldRecipient
from store.backends import Nodes, new_hold


async def held(
    store: HoldStore,
    sender: str = "head@school.test",
    to: tuple[str, ...] = ("officer@nosts.test",),
    reasons: tuple[str, ...] = ("sts-no-record",),
) -> Hold:
    hold, created = await store.hold(
        new_hold(sender=sender, to=to, reasons=reasons),
        lambda h: ([audit.held("Q1", h, sender=sender)], []),
    )
    assert created
    return hold


async def test_a_change_applies_only_from_the_expected_status(
    hold_store: HoldStore, store_nodes: Nodes
) -> None:
    clock = store_nodes.clock
    hold = await held(hold_store)
    held_now = frozenset({Status.HELD})
    escalated = await hold_store.update(hold.id, held_now, Escalate(clock()))
    assert escalated is not None
    assert escalated.escalated_at == clock()
    decided = await hold_store.update(hold.id, held_now, Decide(Status.RELEASING, 5.0, "Jo", "why"))
    assert decided is not None
    assert (decided.status, decided.decided_by, decided.decision) == (
        Status.RELEASING,
        "Jo",
        "why",
    )
    assert await hold_store.update(hold.id, held_now, Decide(Status.REJECTED, 6.0, "Al")) is None
    releasing = frozenset({Status.RELEASING})
    pending = await hold_store.update(hold.id, releasing, DeliveryPending("451 later", ("a@x",)))
    assert pending is not None
    assert (pending.last_error, pending.delivered, pending.attempt_at) == (
        "451 later",
        ("a@x",),
        None,
    )
    done = await hold_store.update(hold.id, releasing, DeliveryDone(("a@x",), {"b@x": "550"}))
    assert done is not None
    assert (done.status, done.refused, done.last_error) == (Status.RELEASED, {"b@x": "550"}, "")


async def test_queries_filter_sort_page_and_count_in_the_store(
    hold_store: HoldStore, store_nodes: Nodes
) -> None:
    clock = store_nodes.clock
    first = await held(hold_store, sender="Zed@school.test", to=("a@one.test",))
    clock.advance(10)
    second = await held(
        hold_store, sender="amy@school.test", to=("b@two.test",), reasons=("dane-x",)
    )
    clock.advance(10)
    third = await held(hold_store, sender="bob@school.test", to=("c@one.test",))
    held_now = HoldQuery.of(Status.HELD)

    async def ids(query: HoldQuery) -> list[str]:
        return [h.id for h in await hold_store.holds(query)]

    assert await ids(held_now) == [first.id, second.id, third.id]
    assert await ids(HoldQuery(order=HoldOrder.NEWEST, limit=2)) == [third.id, second.id]
    assert await ids(HoldQuery(order=HoldOrder.NEWEST, limit=2, offset=2)) == [first.id]
    assert await ids(HoldQuery(order=HoldOrder.SENDER)) == [second.id, third.id, first.id]
    assert await ids(HoldQuery(order=HoldOrder.DOMAIN)) == [first.id, third.id, second.id]
    assert await ids(HoldQuery(recipient_domain="one.test")) == [first.id, third.id]
    assert await ids(HoldQuery(reason="dane-x")) == [second.id]
    assert await ids(HoldQuery(sender="ZED@")) == [first.id]
    assert await ids(HoldQuery(created_before=clock() - 10)) == [first.id, second.id]
    assert await ids(HoldQuery.of(Status.REJECTED)) == []
    assert await hold_store.count_holds(HoldQuery(recipient_domain="one.test", limit=1)) == 2


DANE_HOST = DaneHostRecord("mx.nosts.test", "usable", ("3 1 1 ab",))


async def test_the_hold_a_writer_is_given_is_the_hold_its_row_reads_back(
    hold_store: HoldStore,
) -> None:
    """What ``then`` and the caller see of a new hold (built before the transaction, never
    read back) is what every later read gets: every field, the facts whole, free text as the
    backend keeps it (PostgreSQL's text cannot hold U+0000)."""
    record = AssessmentRecord(  # every field set, none left to its default
        "nosts.test", "insecure", "none", ("sts-no-record",), "not-listed", "", "found",
        ("mx.nosts.test",), True, "none", "", "not-fetched", "", (), None, "found",
        ("mailto:tls@nosts.test",), "usable", (DANE_HOST,),
    )  # fmt: skip
    facts = HoldFacts(
        (record,), {"gone@secure.test": "550 5.1.1 no"}, {"x@direct.test": ("mx1: refused",)}
    )
    recipient = HeldRecipient(
        "Jo\x00@nosts.test", "nosts.test", ("sts-no-record",), ("NOTIFY=NEVER",)
    )
    new = replace(
        new_hold(),
        recipients=(recipient,),
        mail_options=("BODY=8BITMIME",),
        facts=facts,
        subject="about \x00 a pupil",
        client="client \x00",
    )
    seen: list[Hold] = []
    made, _ = await hold_store.hold(new, lambda h: (seen.append(h), ((), ()))[1])
    assert seen == [made]
    assert await hold_store.get(made.id) == made
    assert made.facts == facts
    assert made.recipients[0].options == ("NOTIFY=NEVER",)


async def test_a_message_is_held_once_and_its_body_is_gone_once_purged(
    hold_store: HoldStore, store_nodes: Nodes
) -> None:
    new = new_hold(key="k1")
    hold, created = await hold_store.hold(new)
    again, created_again = await hold_store.hold(new, lambda h: ([audit.held("Q2", h)], []))
    assert (created, created_again, again.id) == (True, False, hold.id)
    assert await hold_store.message(hold.id) == new.message
    other = await store_nodes.node()  # another node reads what the first wrote
    assert await other.message(hold.id) == new.message
    assert await other.purge_body(hold.id, [AuditRecord("purged", hold.id, "gateway", {})])
    with pytest.raises(KeyError):
        await hold_store.message(hold.id)
    assert not await hold_store.purge_body(hold.id)
    purged = await hold_store.get(hold.id)
    assert purged is not None
    assert purged.purged_at == store_nodes.clock()
    assert await hold_store.count_holds(HoldQuery(purged=True)) == 1
    # The duplicate's audit entry was never written: only the purge is in the trail.
    assert [e.event for e in await hold_store.audit_entries()] == ["purged"]


async def test_the_journal_keeps_each_recipient_once(hold_store: HoldStore) -> None:
    assert await hold_store.relayed("m1") == frozenset()
    await hold_store.record_relayed("m1", ["a@x.test"])
    await hold_store.record_relayed("m1", ["a@x.test", "b@x.test"])
    assert await hold_store.relayed("m1") == frozenset({"a@x.test", "b@x.test"})
    assert await hold_store.relayed("m2") == frozenset()


async def test_a_hold_reads_the_journal_of_its_message_in_the_same_write(
    hold_store: HoldStore,
) -> None:
    """A message held in part and relayed in part: the hold's write says which recipients an
    earlier send already relayed, whether the hold is new or an earlier send made it."""
    new = new_hold(key="m1:policy")
    hold, created, relayed = await hold_store.hold_and_relayed(new, None, "m1")
    assert (created, relayed) == (True, frozenset())
    await hold_store.record_relayed("m1", ["a@secure.test"])
    again, created_again, relayed_again = await hold_store.hold_and_relayed(
        new, lambda h: ([audit.held("Q2", h)], []), "m1"
    )
    assert (again.id, created_again, relayed_again) == (hold.id, False, {"a@secure.test"})
    other, _, relayed_other = await hold_store.hold_and_relayed(
        new_hold(key="m2:policy"), None, "m2"
    )
    assert other.id != hold.id
    assert relayed_other == frozenset()
    assert await hold_store.audit_entries() == []  # the duplicate's entry was never written


async def test_verify_names_an_edited_entry(hold_store: HoldStore, store_nodes: Nodes) -> None:
    await hold_store.append_audit([AuditRecord("viewed", f"h{n}", "Sam", {}) for n in range(3)])
    assert await hold_store.verify_audit() == (3, None)
    assert await hold_store.audit_head() == (3, (await hold_store.audit_entries())[-1].hash)
    await store_nodes.sql("UPDATE audit SET actor = 'Someone else' WHERE seq = 2")
    count, problem = await hold_store.verify_audit()
    assert count == 3
    assert problem is not None
    assert problem.seq == 2


async def test_each_write_to_the_trail_logs_the_head_it_made(hold_store: HoldStore) -> None:
    """The log witnesses the head: one line per write, whose SEQ:HASH the trail contains."""
    records = [AuditRecord("received", "", "gateway", {}), AuditRecord("viewed", "h1", "Sam", {})]
    with structlog.testing.capture_logs() as logged:
        await hold_store.append_audit(records)
        await hold_store.append_audit([AuditRecord("viewed", "h2", "Al", {})])
    lines = [e for e in logged if e["event"] == "audit appended"]
    assert [(e["seq"], e["entries"], e["audit_event"], e["hold_id"]) for e in lines] == [
        (2, 2, "received,viewed", "h1"),
        (3, 1, "viewed", "h2"),
    ]
    for line in lines:
        head = Head(line["seq"], line["head"])
        found = await hold_store.audit_entry(head.seq)
        assert found is not None
        assert found.hash == head.hash
    assert await hold_store.verify_audit() == (3, None)
