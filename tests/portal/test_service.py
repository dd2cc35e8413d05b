"""The portal's service on both store backends: what several requests, or several nodes, at
once cannot do (count one attempt twice, use one code twice, send the "opened" notice twice),
and the limit of codes per address over all its links."""

from __future__ import annotations

import asyncio
import re
import secrets

from store.backends import SEALING_KEY, Nodes, new_hold

from gateway.config.settings import NotifySettings, ReviewSettings
from gateway.core.securelink import (
    MAX_CODE_ATTEMPTS,
    RESEND_INTERVAL,
    TOKEN_BYTES,
    CodeCheck,
    LinkState,
    token_digest,
    token_text,
)
from gateway.portal.service import ADDRESS_CODES, CodeSent, Opened, Portal, code_pepper
from gateway.review.linknotices import LinkNotices
from gateway.review.notices import Notices
from gateway.store import HoldStore, Status
from gateway.store.changes import SendLinks
from gateway.store.links import NewLink

CODE = re.compile(rb"^ +(\d{4} \d{4})\r?$", re.MULTILINE)
CLIENT = "192.0.2.7"


async def linked_to(store: HoldStore, nodes: Nodes, to: list[str]) -> list[str]:
    """A hold sent by secure link to ``to``; the links' tokens."""
    hold, _ = await store.hold(new_hold(to=tuple(to)))
    tokens = [token_text(secrets.token_bytes(TOKEN_BYTES)) for _ in to]
    now = nodes.clock()
    made = tuple(
        NewLink("L" + secrets.token_hex(5).upper(), address, token_digest(token), now + 14 * 86400)
        for address, token in zip(to, tokens, strict=True)
    )
    change = SendLinks(now, "Jo Reviewer", "the school's procedure", made)
    assert await store.update(hold.id, frozenset({Status.HELD}), change) is not None
    return tokens


def portal(store: HoldStore, nodes: Nodes) -> Portal:
    notices = Notices(NotifySettings(), ReviewSettings(), "gateway.school.test")
    mails = LinkNotices(notices, "https://portal.school.test", 2 * 86400.0)
    return Portal(store, mails, code_pepper(SEALING_KEY), clock=nodes.clock)


async def opened(service: Portal, token: str) -> Opened:
    found = await service.open(token)
    assert found is not None
    return found


async def last_code(store: HoldStore, nodes: Nodes, recipient: str) -> str:
    codes = [
        n
        for n in await store.due_notices(nodes.clock(), 500)
        if n.kind == "link-code" and recipient in n.recipients
    ]
    match = CODE.search(codes[-1].message)
    assert match
    return match.group(1).decode()


async def test_wrong_codes_from_two_nodes_at_once_lock_after_exactly_five(
    hold_store: HoldStore, store_nodes: Nodes
) -> None:
    [token] = await linked_to(hold_store, store_nodes, ["ann@plain.test"])
    one, two = portal(hold_store, store_nodes), portal(await store_nodes.node(), store_nodes)
    assert await one.send_code(await opened(one, token), CLIENT) is CodeSent.SENT
    before = len(await hold_store.audit_entries())
    tries = [
        service.verify(await opened(service, token), "00000000", CLIENT)
        for service in (one, two) * MAX_CODE_ATTEMPTS
    ]
    results = await asyncio.gather(*tries)
    checks = [r.check for r in results]
    assert checks.count(CodeCheck.LOCKED) == 1, checks
    assert checks.count(CodeCheck.WRONG) == MAX_CODE_ATTEMPTS - 1, checks
    assert checks.count(None) == MAX_CODE_ATTEMPTS, checks  # the rest found it locked
    events = [e.event for e in (await hold_store.audit_entries())[before:]]
    assert events.count("link-code-failed") == MAX_CODE_ATTEMPTS - 1
    assert events.count("link-locked") == 1
    assert (await opened(one, token)).state is LinkState.LOCKED


async def test_a_code_opens_once_and_the_sender_is_told_once(
    hold_store: HoldStore, store_nodes: Nodes
) -> None:
    [token] = await linked_to(hold_store, store_nodes, ["bo@plain.test"])
    one, two = portal(hold_store, store_nodes), portal(await store_nodes.node(), store_nodes)
    await one.send_code(await opened(one, token), CLIENT)
    code = await last_code(hold_store, store_nodes, "bo@plain.test")
    results = await asyncio.gather(
        one.verify(await opened(one, token), code, CLIENT),
        two.verify(await opened(two, token), code, CLIENT),
    )
    assert sorted(r.check for r in results) == sorted([CodeCheck.OK, CodeCheck.NONE_SENT])
    views = await asyncio.gather(
        one.message(await opened(one, token), CLIENT),
        two.message(await opened(two, token), CLIENT),
    )
    assert all(view is not None for view in views)
    events = [e.event for e in await hold_store.audit_entries()]
    assert events.count("link-opened") == 1
    assert events.count("link-viewed") == 1
    notices = await hold_store.due_notices(store_nodes.clock(), 500)
    assert [n.kind for n in notices].count("link-opened") == 1


async def test_an_address_gets_at_most_its_codes_a_day_over_all_its_links(
    hold_store: HoldStore, store_nodes: Nodes
) -> None:
    address = "cy@plain.test"
    tokens = [t for _ in range(3) for t in await linked_to(hold_store, store_nodes, [address])]
    service = portal(hold_store, store_nodes)
    sent = []
    for token in tokens:
        for _ in range(ADDRESS_CODES):
            store_nodes.clock.advance(RESEND_INTERVAL)
            sent.append(await service.send_code(await opened(service, token), CLIENT))
    assert sent.count(CodeSent.SENT) == ADDRESS_CODES
    assert sent[-1] is CodeSent.TOO_MANY
    store_nodes.clock.advance(86400)
    assert await service.send_code(await opened(service, tokens[-1]), CLIENT) is CodeSent.SENT
