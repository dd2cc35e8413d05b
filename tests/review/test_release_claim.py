"""One release is delivered once, also when the sweep of the same process picks it up while
the reviewer's release is under way (the web UI runs inside `gateway serve`, beside the
sweep): the claim on a release is exclusive within one process too, not only across them."""

from __future__ import annotations

import asyncio
import time

from store.backends import Nodes

from gateway.config import loader
from gateway.delivery.deliver import Delivery
from gateway.review.model import Review
from gateway.store import HeldRecipient, Hold, HoldQuery, HoldStore, NewHold, Status
from support.transports import FakeTransport

MESSAGE = b"From: a@school.test\r\nSubject: x\r\nX-Safeguarding: yes\r\n\r\nBody\r\n"


class Interleaved:
    """Forces the race on a store of either backend: the sweep lists the releasing hold
    before the reviewer's release has claimed it, and claims it only after the release did."""

    def __init__(self, store: HoldStore) -> None:
        self.store = store
        self.listed = asyncio.Event()
        self.first_claimed = asyncio.Event()
        self.release_waiting = asyncio.Event()
        self.claims = 0
        self._holds, self._claim = store.holds, store.claim
        store.holds = self.holds  # type: ignore[method-assign]
        store.claim = self.claim  # type: ignore[method-assign]

    async def holds(self, query: HoldQuery) -> list[Hold]:
        found = list(await self._holds(query))
        if Status.RELEASING in query.statuses:
            self.listed.set()
        return found

    async def claim(
        self, hold_id: str, owner: str, now: float, stale_before: float, dead_owner: str = ""
    ) -> Hold | None:
        self.claims += 1
        if self.claims == 1:  # the reviewer's release, decided, at its claim
            self.release_waiting.set()
            await self.listed.wait()
            claimed = await self._claim(hold_id, owner, now, stale_before, dead_owner)
            self.first_claimed.set()
            return claimed
        await self.first_claimed.wait()  # the sweep, with its stale view of the hold
        return await self._claim(hold_id, owner, now, stale_before, dead_owner)


async def test_a_sweep_during_a_release_does_not_deliver_a_second_copy(
    store_nodes: Nodes,
) -> None:
    settings = loader.load(None, environ={"GATEWAY_NOTIFY_ENABLED": "false"})
    store = await store_nodes.node(time.time)
    race = Interleaved(store)
    transport = FakeTransport()
    review = Review(settings, store, Delivery(transport, store, "gw.test"), "gw.test")
    hold, _ = await store.hold(
        NewHold(
            key="k1",
            sender="a@school.test",
            recipients=(HeldRecipient("b@nosts.test", "nosts.test", ("sts-no-record",)),),
            mail_options=(),
            message=MESSAGE,
            client="127.0.0.1",
            message_id="<m1@school.test>",
            findings=("header",),
        )
    )
    release = asyncio.create_task(review.release(hold.id, "confirmed by phone", "Jo"))
    await race.release_waiting.wait()  # decided, and waiting at its claim: now the sweep
    report, outcome = await asyncio.gather(review.sweep(), release)
    assert outcome.done
    assert report.released == []
    assert transport.received == [("b@nosts.test",)]  # one copy, not two
    final = await store.get(hold.id)
    assert final is not None
    assert final.status is Status.RELEASED
