"""The life of a long-running gateway process, shared by `gateway serve` and `gateway web`:
load the allowlist, open the store, the relay (and the delivery over it) and the posture, stop
on SIGTERM or SIGINT, and close everything in reverse order however the run ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from gateway.config.settings import Settings
from gateway.config.values import DirectDelivery
from gateway.delivery.deliver import Delivery
from gateway.delivery.queue import QueueRunner
from gateway.delivery.smarthost import Smarthost
from gateway.errors import SchemaMismatch, StoreUnavailable
from gateway.posture.allowlists import InForce
from gateway.posture.assessment import Posture
from gateway.review.model import Review
from gateway.runtime.parts import (
    build_mx_transport,
    hostname,
    load_allowlist,
    open_posture,
    open_relay,
    open_store,
    store_location,
)
from gateway.store.protocols import HoldStore

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@dataclass(frozen=True)
class Running:
    """The parts of a running process, and the event its stop signals set."""

    settings: Settings
    store: HoldStore
    relay: Smarthost
    delivery: Delivery
    posture: Posture
    review: Review
    hostname: str
    stop: asyncio.Event
    queue: QueueRunner | None = None  # [delivery] direct: the runner of the delivery queue


@contextlib.asynccontextmanager
async def lifecycle(settings: Settings, log: Any) -> AsyncIterator[Running]:
    loaded = load_allowlist(settings)
    for problem in loaded.problems:
        log.warning("allowlist problem", problem=str(problem))
    log.info(
        "allowlist loaded",
        files=[str(f) for f in loaded.files],
        entries=len(loaded.allowlist.entries),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    try:
        async with contextlib.AsyncExitStack() as parts:
            # Handled from before the first part opens until after the last one closes: a
            # second SIGTERM while stopping (an impatient operator, a supervisor that repeats
            # itself) must not kill the process between closing the store and exiting.
            for signum in STOP_SIGNALS:
                loop.add_signal_handler(signum, _stop_once, stop, log)
            parts.callback(_default_signals, loop)
            store = await _open_store(settings, log)
            parts.push_async_callback(store.close)
            relay = open_relay(settings)
            parts.push_async_callback(relay.close)
            in_force = InForce(loaded.allowlist, loaded.files, time.time())
            posture = await parts.enter_async_context(open_posture(settings, in_force))
            name = hostname(settings)
            delivery = Delivery(relay, store, name)
            review = Review(settings, store, delivery, name)
            queue = None
            if settings.delivery.direct is not DirectDelivery.NONE:
                direct = build_mx_transport(settings, posture)
                parts.push_async_callback(direct.close)
                queue = QueueRunner(store, Delivery(direct, store, name), settings, name)
            yield Running(settings, store, relay, delivery, posture, review, name, stop, queue)
    finally:
        log.info("stopped")


async def _open_store(settings: Settings, log: Any) -> HoldStore:
    """The store, its schema checked; a store that is not there or not this release's stops
    the start with one line that says so (never the DSN's password)."""
    where = store_location(settings)
    try:
        store = await open_store(settings)
    except (SchemaMismatch, StoreUnavailable) as exc:
        log.error("store cannot be used", store=where, error=str(exc))
        raise
    log.info("store opened", store=where)
    return store


def _stop_once(stop: asyncio.Event, log: Any) -> None:
    if stop.is_set():
        log.info("already stopping")
    stop.set()


def _default_signals(loop: asyncio.AbstractEventLoop) -> None:
    for signum in STOP_SIGNALS:
        loop.remove_signal_handler(signum)
