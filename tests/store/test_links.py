"""Secure links in the hold store, on SQLite and on PostgreSQL: made with the hold's decision
and only with it, every later step a compare-and-set that a stale or concurrent caller loses
(writing nothing), the sweep's and the portal's look-ups, and links that outlive the body."""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
from collections.abc import Awaitable, Callable

import psycopg
import pytest

from gateway.audit import linkevents
from gateway.core.securelink import (
    CODE_LIFETIME,
    CodeCheck,
    CodeOutcome,
    LinkState,
    link_state,
    token_digest,
    token_text,
)
from gateway.store import DECIDED, Decide, Hold, HoldStore, NewNotice, Status
from gateway.store.changes import SendLinks
from gateway.store.links import Link, NewLink
from store.backends import Nodes, new_hold

HELD = frozenset({Status.HELD})
DAY = 86400.0


def new_link(recipient: str, expires_at: float, digest: str = "") -> NewLink:
    token = token_text(secrets.token_bytes(32))
    link_id = "L" + secrets.token_hex(5).upper()
    return NewLink(link_id, recipient, digest or token_digest(token), expires_at)


def notice(hold_id: str, kind: str, to: str) -> NewNotice:
    return NewNotice(kind, hold_id, "gateway@school.test", (to,), b"Subject: note\r\n\r\nx\r\n")


async def linked(
    store: HoldStore, now: float, to: tuple[str, ...] = ("ann@plain.test", "bo@other.test")
) -> tuple[Hold, tuple[Link, ...]]:
    """A hold sent by secure link to each of ``to``: the decision, its audit and notice."""
    hold, _ = await store.hold(new_hold(to=to))
    made = tuple(new_link(address, now + 14 * DAY) for address in to)
    change = SendLinks(now, "Jo Reviewer", "the school's procedure", made)
    pairs = [(link.id, link.recipient) for link in made]
    record = linkevents.links_sent(hold, "Jo Reviewer", change.text, pairs, automatic=False)
    decided = await store.update(
        hold.id, HELD, change, [record], [notice(hold.id, "link", a) for a in to]
    )
    assert decided is not None
    return decided, tuple(await store.links_of(hold.id))


async def trail_length(store: HoldStore) -> int:
    return len(await store.audit_entries())


async def test_the_decision_makes_the_links_with_its_audit_and_notices(
    hold_store: HoldStore, store_nodes: Nodes
) -> None:
    now = store_nodes.clock()
    hold, links = await linked(hold_store, now)
    assert (hold.status, hold.decided_at, hold.decided_by, hold.decision) == (
        Status.LINKED,
        now,
        "Jo Reviewer",
        "the school's procedure",
    )
    assert hold.status in DECIDED
    assert [link.recipient for link in links] == ["ann@plain.test", "bo@other.test"]
    for link in links:
        assert (link.hold_id, link.created_at, link.created_by) == (hold.id, now, "Jo Reviewer")
        assert link.expires_at == now + 14 * DAY
        assert (link.code.sent, link.code.attempts, link.code.digest) == (0, 0, "")
        assert link.opened_at is link.revoked_at is link.locked_at is None
        assert await hold_store.link(link.id) == link
        assert await hold_store.link_by_token(link.token_digest) == link
        assert link_state(link.facts(purged=False), now) is LinkState.ACTIVE
    assert await hold_store.link_by_token(token_digest("not a token")) is None
    [entry] = [e for e in await hold_store.audit_entries() if e.event == "link-sent"]
    assert [x["recipient"] for x in entry.data["links"]] == ["ann@plain.test", "bo@other.test"]
    queued = await hold_store.due_notices(now + 1)
    assert sorted(n.recipients[0] for n in queued if n.kind == "link") == [
        "ann@plain.test",
        "bo@other.test",
    ]


async def test_a_second_decision_is_refused_and_adds_no_links(
    hold_store: HoldStore, store_nodes: Nodes
) -> None:
    now = store_nodes.clock()
    hold, links = await linked(hold_store, now)
    entries = await trail_length(hold_store)
    again = SendLinks(now + 5, "Al", "again", (new_link("ann@plain.test", now + DAY),))
    refused = await hold_store.update(hold.id, HELD, again, [linkevents.revoked(links[0], "x", "")])
    assert refused is None
    assert await hold_store.update(hold.id, HELD, Decide(Status.REJECTED, now, "Al")) is None
    assert tuple(await hold_store.links_of(hold.id)) == links
    assert await trail_length(hold_store) == entries
    after = await hold_store.get(hold.id)
    assert after is not None
    assert (after.status, after.decided_by) == (Status.LINKED, "Jo Reviewer")


async def test_a_decision_whose_link_cannot_be_stored_is_not_taken(
    hold_store: HoldStore, store_nodes: Nodes
) -> None:
    """Token digests are unique: a clash rolls the whole decision back, never half of it."""
    now = store_nodes.clock()
    _, [first, *_] = await linked(hold_store, now)
    hold, _ = await hold_store.hold(new_hold(to=("cy@plain.test", "di@plain.test")))
    clash = (
        new_link("cy@plain.test", now + DAY),
        new_link("di@plain.test", now + DAY, first.token_digest),
    )
    with pytest.raises((sqlite3.IntegrityError, psycopg.errors.UniqueViolation)):
        await hold_store.update(hold.id, HELD, SendLinks(now, "Jo", "why", clash))
    unchanged = await hold_store.get(hold.id)
    assert unchanged is not None
    assert unchanged.status is Status.HELD
    assert await hold_store.links_of(hold.id) == []


async def test_each_step_refuses_a_stale_expectation_and_writes_nothing(
    hold_store: HoldStore, store_nodes: Nodes
) -> None:
    now = store_nodes.clock()
    hold, (link, _) = await linked(hold_store, now)
    store = hold_store
    wrong = CodeOutcome(CodeCheck.WRONG, 1)
    sent, failed = linkevents.code_sent(link, "c"), linkevents.code_failed(link, "c", 1, False)
    opened, revoked = linkevents.opened(link, "c"), linkevents.revoked(link, "Al", "why")
    unopened = linkevents.unopened(link, DAY, [hold.sender])
    told = [notice(hold.id, "link-opened", hold.sender)]
    steps: list[tuple[str, Callable[[], Awaitable[Link | None]]]] = [
        ("code sent", lambda: store.link_code_sent(link.id, 0, "d1", now, now + 600, [sent])),
        ("code entered", lambda: store.link_code_entered(link.id, 0, wrong, now, [failed])),
        ("opened", lambda: store.link_opened(link.id, now, [opened], told)),
        ("revoked", lambda: store.revoke_link(link.id, now, "Al", [revoked])),
        ("unopened", lambda: store.link_unopened_noticed(link.id, now, [unopened], told)),
    ]
    for name, step in steps:
        assert await step() is not None, name
        entries = await trail_length(store)
        await store.due_notices(now + 1)  # what the step queued, out of the way
        assert await step() is None, f"{name} twice with the same expectation"
        assert await trail_length(store) == entries, name
        assert await store.due_notices(now + 1) == [], name
    after = await store.link(link.id)
    assert after is not None
    assert (after.code.sent, after.code.digest, after.code.attempts) == (1, "d1", 1)
    assert (after.opened_at, after.revoked_at, after.revoked_by) == (now, now, "Al")
    assert after.unopened_noticed_at == now
    assert link_state(after.facts(purged=False), now) is LinkState.REVOKED


async def test_codes_count_attempts_lock_the_link_and_are_used_once(
    hold_store: HoldStore, store_nodes: Nodes
) -> None:
    now = store_nodes.clock()
    _, (link, other) = await linked(hold_store, now)
    sent = await hold_store.link_code_sent(link.id, 0, "first", now, now + CODE_LIFETIME)
    assert sent is not None
    assert (sent.code.digest, sent.code.sent, sent.code.sent_at) == ("first", 1, now)
    assert sent.code.expires_at == now + CODE_LIFETIME
    again = await hold_store.link_code_sent(link.id, 1, "second", now + 60, now + 660)
    assert again is not None
    assert (again.code.digest, again.code.sent) == ("second", 2)
    right = await hold_store.link_code_entered(link.id, 0, CodeOutcome(CodeCheck.OK, 0), now)
    assert right is not None
    assert right.code.digest == ""  # used up: the same code does not open it twice
    assert await hold_store.link_code_entered(link.id, 0, CodeOutcome(CodeCheck.OK, 0), now) is None
    assert await hold_store.link_code_sent(other.id, 0, "third", now, now + CODE_LIFETIME)
    for attempts in range(1, 5):
        wrong = CodeOutcome(CodeCheck.WRONG, attempts)
        assert await hold_store.link_code_entered(other.id, attempts - 1, wrong, now) is not None
    last = CodeOutcome(CodeCheck.LOCKED, 5)
    locked = await hold_store.link_code_entered(other.id, 4, last, now + 3)
    assert locked is not None
    assert (locked.code.attempts, locked.locked_at) == (5, now + 3)
    assert link_state(locked.facts(purged=False), now + 3) is LinkState.LOCKED


@pytest.mark.parametrize("nodes", [1, 2], ids=["one store", "two nodes"])
async def test_two_entries_of_a_code_at_once_count_once(store_nodes: Nodes, nodes: int) -> None:
    """Two tabs (or two nodes) checking a code against the same attempts: one write wins, the
    other must check again, so no attempt is lost and a right code opens once."""
    a = await store_nodes.node()
    b = a if nodes == 1 else await store_nodes.node()
    now = store_nodes.clock()
    _, links = await linked(a, now, tuple(f"r{n}@plain.test" for n in range(8)))
    for link in links:
        sent = await a.link_code_sent(link.id, 0, "code", now, now + CODE_LIFETIME)
        assert sent is not None
    wrong, right = CodeOutcome(CodeCheck.WRONG, 1), CodeOutcome(CodeCheck.OK, 0)
    races = [
        asyncio.gather(
            a.link_code_entered(link.id, 0, wrong, now),
            b.link_code_entered(link.id, 0, second, now),
        )
        for link, second in zip(links, [wrong, right] * 4, strict=True)
    ]
    for link, results in zip(links, await asyncio.gather(*races), strict=True):
        [winner] = [r for r in results if r is not None]
        assert await b.link(link.id) == winner
        assert winner.code.attempts in (0, 1)


@pytest.mark.parametrize("nodes", [1, 2], ids=["one store", "two nodes"])
async def test_a_link_is_opened_once_and_its_sender_told_once(
    store_nodes: Nodes, nodes: int
) -> None:
    a = await store_nodes.node()
    b = a if nodes == 1 else await store_nodes.node()
    now = store_nodes.clock()
    hold, links = await linked(a, now, tuple(f"r{n}@plain.test" for n in range(6)))
    await a.due_notices(now + 1)  # the links' own notices, out of the way

    async def opened(store: HoldStore, link: Link, at: float) -> Link | None:
        told = notice(hold.id, "link-opened", hold.sender)
        return await store.link_opened(link.id, at, [linkevents.opened(link, "c")], [told])

    races = [asyncio.gather(opened(a, link, now + 1), opened(b, link, now + 2)) for link in links]
    for results in await asyncio.gather(*races):
        assert len([r for r in results if r is not None]) == 1
    events = [e.event for e in await b.audit_entries()]
    assert events.count("link-opened") == len(links)
    told = [n for n in await b.due_notices(now + 10) if n.kind == "link-opened"]
    assert len(told) == len(links)


async def test_the_unopened_sweep_sees_only_links_nobody_opened_revoked_or_noticed(
    hold_store: HoldStore, store_nodes: Nodes
) -> None:
    clock = store_nodes.clock
    start = clock()
    _, (opened, revoked, noticed, waiting) = await linked(
        hold_store, start, ("a@p.test", "b@p.test", "c@p.test", "d@p.test")
    )
    clock.advance(DAY)
    _, (recent,) = await linked(hold_store, clock(), ("e@p.test",))
    assert await hold_store.link_opened(opened.id, clock())
    assert await hold_store.revoke_link(revoked.id, clock(), "Al")
    assert await hold_store.link_unopened_noticed(noticed.id, clock())
    due = await hold_store.unopened_links(start + 1)
    assert [link.id for link in due] == [waiting.id]
    assert [link.id for link in await hold_store.unopened_links(clock() + 1)] == [
        waiting.id,
        recent.id,
    ]
    assert len(await hold_store.unopened_links(clock() + 1, limit=1)) == 1
    assert await hold_store.unopened_links(start) == []


async def test_codes_sent_to_an_address_count_over_its_links_within_the_window(
    hold_store: HoldStore, store_nodes: Nodes
) -> None:
    clock = store_nodes.clock
    start = clock()
    _, (mine, theirs) = await linked(hold_store, start, ("Ann@Plain.test", "bo@plain.test"))
    _, (mine_too,) = await linked(hold_store, start, ("ann@plain.test",))
    assert await hold_store.link_code_sent(mine.id, 0, "a", clock(), clock() + 600)
    assert await hold_store.link_code_sent(theirs.id, 0, "b", clock(), clock() + 600)
    clock.advance(120)
    assert await hold_store.link_code_sent(mine.id, 1, "c", clock(), clock() + 600)
    assert await hold_store.link_code_sent(mine_too.id, 0, "d", clock(), clock() + 600)
    assert await hold_store.link_code_sent(mine_too.id, 0, "e", clock(), clock() + 600) is None
    assert await hold_store.codes_sent_to("ann@plain.test", start) == 3
    assert await hold_store.codes_sent_to("ANN@plain.test", start + 1) == 2
    assert await hold_store.codes_sent_to("bo@plain.test", start) == 1
    assert await hold_store.codes_sent_to("nobody@plain.test", start) == 0


async def test_links_outlive_the_purged_body_and_then_open_nothing(
    hold_store: HoldStore, store_nodes: Nodes
) -> None:
    now = store_nodes.clock()
    hold, links = await linked(hold_store, now)
    assert await hold_store.purge_body(hold.id)
    purged = await hold_store.get(hold.id)
    assert purged is not None
    assert purged.purged_at is not None
    with pytest.raises(KeyError):
        await hold_store.message(hold.id)
    assert tuple(await hold_store.links_of(hold.id)) == links
    for link in links:
        found = await hold_store.link_by_token(link.token_digest)
        assert found == link
        assert link_state(found.facts(purged=True), now) is LinkState.PURGED


async def test_two_nodes_sending_a_code_at_once_send_one(store_nodes: Nodes) -> None:
    """Two "email me a code" presses on two nodes: one code is stored, counted and mailed."""
    a, b = await store_nodes.node(), await store_nodes.node()
    now = store_nodes.clock()
    hold, links = await linked(a, now, tuple(f"r{n}@plain.test" for n in range(6)))
    await a.due_notices(now + 1)

    async def send(store: HoldStore, link: Link, digest: str) -> Link | None:
        mail = notice(hold.id, "link-code", link.recipient)
        record = linkevents.code_sent(link, "c")
        return await store.link_code_sent(link.id, 0, digest, now, now + 600, [record], [mail])

    races = [asyncio.gather(send(a, link, "from a"), send(b, link, "from b")) for link in links]
    for link, results in zip(links, await asyncio.gather(*races), strict=True):
        [winner] = [r for r in results if r is not None]
        assert await a.link(link.id) == winner
        assert winner.code.sent == 1
        assert await b.codes_sent_to(link.recipient, now) == 1
    mailed = [n for n in await b.due_notices(now + 10) if n.kind == "link-code"]
    assert sorted(n.recipients[0] for n in mailed) == sorted(link.recipient for link in links)
    events = [e.event for e in await a.audit_entries()]
    assert events.count("link-code-sent") == len(links)
