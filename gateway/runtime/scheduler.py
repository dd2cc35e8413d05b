"""The recurring work of `gateway serve`, each an asyncio task that runs until the gateway
stops: the review scheduler (sweeps on the leader; the notices of its own holds on every
worker), the delivery queue's rounds ([delivery] direct), and the audit head's witness (the
leader's: logged and sent to [audit] witnesses).

Apart from ``serve`` because these loops are what runs once everything is listening, while
``serve`` builds, binds and stops the parts in order. Each loop outlives a bad round (logged,
tried again later) and waits on an event with a timeout, so a hold, a queued message or a stop
wakes it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time

from gateway import logs
from gateway.audit import witness
from gateway.config.settings import Settings
from gateway.core.auditchain import Head
from gateway.delivery.queue import QueueRunner
from gateway.review.model import Review
from gateway.review.notices import audit_head_notice
from gateway.runtime.lifecycle import Running
from gateway.runtime.parts import data_dir

# The delivery queue is looked at least this often, so that `gateway queue retry` (another
# process) takes effect soon.
QUEUE_POLL = 15.0


async def stop_witness(witnessing: asyncio.Task[None], stop: asyncio.Event) -> None:
    """Stop the witness and take its SIGUSR1 handler away."""
    stop.set()
    await witnessing
    asyncio.get_running_loop().remove_signal_handler(signal.SIGUSR1)


async def stop_scheduler(
    scheduler: asyncio.Task[None], stop: asyncio.Event, wake: asyncio.Event
) -> None:
    """Stop a loop that waits on ``wake`` (the review scheduler or the queue's rounds)."""
    stop.set()
    wake.set()
    await scheduler


def keep_witness(settings: Settings, running: Running, wake: asyncio.Event) -> asyncio.Task[None]:
    """Log the audit trail's head at start, every [audit] head_interval and on SIGUSR1, and
    send it to [audit] witnesses every [audit] witness_every."""
    asked = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, asked.set)
    configured = settings.audit.witness_file
    path = settings.path(configured) if configured else data_dir(settings) / witness.WITNESS_FILE
    witnesses = settings.audit.witnesses

    async def send(head: Head, at: float) -> None:
        notice = audit_head_notice(
            running.review.notices.sender, running.hostname, witnesses, head.seq, head.hash, at
        )
        await running.store.queue_notices([notice])
        wake.set()  # the scheduler sends it now

    keeper = witness.Witness(
        running.store,
        path,
        send=send if witnesses else None,
        send_every=settings.audit.witness_every,
    )
    return asyncio.create_task(
        witness.keep(keeper, settings.audit.head_interval, running.stop, asked)
    )


async def schedule_review(
    review: Review,
    settings: Settings,
    wake: asyncio.Event,
    stop: asyncio.Event,
    sweep: bool = True,
) -> None:
    """Sweep every [review] sweep_interval; send notices at once when a hold wakes us."""
    log = logs.get("gateway.scheduler")
    interval = settings.review.sweep_interval
    next_sweep = 0.0 if sweep else float("inf")
    while not stop.is_set():
        wake.clear()  # before the work: a hold that arrives during it wakes the next round
        try:
            if time.monotonic() >= next_sweep:
                report = await review.sweep()
                next_sweep = time.monotonic() + interval
                if report.escalated or report.expired or report.purged or report.released:
                    log.info(
                        "sweep",
                        escalated=report.escalated,
                        expired=report.expired,
                        purged=report.purged,
                        released=report.released,
                    )
                if report.unopened:
                    log.info("secure links not opened", links=report.unopened)
            else:
                await review.drain_notices()
        except Exception:  # the scheduler must outlive a bad sweep; it runs again later
            log.exception("sweep failed")
            if sweep:
                next_sweep = time.monotonic() + interval
        if stop.is_set():
            break
        with contextlib.suppress(TimeoutError):
            timeout = min(max(0.0, next_sweep - time.monotonic()), interval)
            await asyncio.wait_for(wake.wait(), timeout)


async def deliver_queue(
    runner: QueueRunner, running: Running, wake: asyncio.Event, notices: asyncio.Event
) -> None:
    """Deliver what is due in the queue; again when something is queued (``wake``), when the
    next entry falls due, and at least every QUEUE_POLL seconds. Notices the attempts made
    (non-delivery, held) go out at once (``notices`` wakes the scheduler)."""
    log = logs.get("gateway.queue")
    while not running.stop.is_set():
        wake.clear()
        due: float | None = None
        try:
            if await runner.run_due():
                notices.set()
            due = await running.store.next_queued_at()
        except Exception:  # the loop must outlive a bad round; it runs again later
            log.exception("queue run failed")
        if running.stop.is_set():
            break
        timeout = QUEUE_POLL if due is None else min(QUEUE_POLL, max(0.0, due - time.time()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout)
