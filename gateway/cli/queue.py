"""`gateway queue ...`: the delivery queue ([delivery] direct) from the shell: what waits and
why, a retry now, and a purge (the sender is told, the trail records who and why)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

from gateway.cli.actor import acting
from gateway.cli.exits import EXIT_FINDING, EXIT_OK, EXIT_USAGE
from gateway.config.settings import Settings
from gateway.core.display import visible
from gateway.core.timefmt import iso_utc, or_dash
from gateway.delivery import queue
from gateway.delivery.deliver import Delivery
from gateway.review.notices import Notices
from gateway.review.outbox import Outbox
from gateway.runtime.parts import hostname, open_relay, open_store
from gateway.runtime.scheduler import QUEUE_POLL
from gateway.store import Queued
from gateway.store.protocols import HoldStore

Command = Callable[[HoldStore, Settings, argparse.Namespace], Coroutine[Any, Any, int]]


def add_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser("queue", parents=[common], help="the delivery queue")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", parents=[common], help="entries still waiting")
    listing.add_argument("--all", action="store_true", help="finished entries too")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(run=_command(list_entries))
    show = actions.add_parser("show", parents=[common], help="one entry, recipient by recipient")
    show.add_argument("queue_id", metavar="ID")
    show.add_argument("--json", action="store_true")
    show.set_defaults(run=_command(show_entry))
    retry = actions.add_parser("retry", parents=[common], help="make an entry due now")
    retry.add_argument("queue_id", metavar="ID")
    retry.set_defaults(run=_command(retry_entry))
    purge = actions.add_parser("purge", parents=[common], help="remove it; the sender is told")
    purge.add_argument("queue_id", metavar="ID")
    purge.add_argument("--reason", required=True, metavar="TEXT")
    purge.add_argument("--by", default=None, help="who decided (default: your user name)")
    purge.set_defaults(run=_command(purge_entry))


def _command(command: Command) -> Callable[[argparse.Namespace, Settings], int]:
    def run(args: argparse.Namespace, settings: Settings) -> int:
        async def go() -> int:
            store = await open_store(settings)
            try:
                return await command(store, settings, args)
            finally:
                await store.close()

        return asyncio.run(go())

    return run


def entry_json(entry: Queued) -> dict[str, Any]:
    return {
        "id": entry.id,
        "queued_at": iso_utc(entry.created_at),
        "sender": entry.sender,
        "flagged": entry.flagged,
        "recipients": [
            {
                "address": r.address,
                "state": r.state.value,
                "reply": r.reply,
                "stage": r.stage,
                "hosts": list(r.hosts),
            }
            for r in entry.recipients
        ],
        "attempts": entry.attempts,
        "next_attempt": None if entry.done_at is not None else iso_utc(entry.next_at),
        "last_error": entry.last_error,
        "finished_at": or_dash(iso_utc, entry.done_at),
    }


async def list_entries(store: HoldStore, settings: Settings, args: argparse.Namespace) -> int:
    entries = await store.queue_entries(finished=args.all)
    if args.json:
        print(json.dumps([entry_json(e) for e in entries], indent=2))
        return EXIT_OK
    if not entries:
        print("the queue is empty" if args.all else "nothing waits in the queue")
    now = time.time()
    for e in entries:
        states = ", ".join(f"{r.address} ({r.state.value})" for r in e.recipients)
        due = "done" if e.done_at is not None else iso_utc(e.next_at)
        age = _age(now - e.created_at)
        line = f"{e.id}  {age}  {e.sender or '<>'}  {states}  next={due}"
        print(visible(line + (f"  last: {e.last_error}" if e.last_error else "")))
    print(f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}", file=sys.stderr)
    return EXIT_OK


async def show_entry(store: HoldStore, settings: Settings, args: argparse.Namespace) -> int:
    entry = await store.queued(args.queue_id)
    if entry is None:
        print(f"gateway: no queue entry {args.queue_id}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(json.dumps(entry_json(entry), indent=2))
        return EXIT_OK
    data = entry_json(entry)
    lines = [f"{k}: {v}" for k, v in data.items() if k != "recipients"]
    for r in entry.recipients:
        lines.append(f"{r.address}: {r.state.value}" + (f": {r.reply}" if r.reply else ""))
        lines += [f"  {host}" for host in r.hosts]
    print(visible("\n".join(lines)))
    return EXIT_OK


async def retry_entry(store: HoldStore, settings: Settings, args: argparse.Namespace) -> int:
    if not await store.retry_queued(args.queue_id, time.time()):
        print(f"gateway: no waiting queue entry {args.queue_id}", file=sys.stderr)
        return EXIT_FINDING
    print(f"{args.queue_id} is due now; gateway serve tries it within {QUEUE_POLL:.0f} seconds")
    return EXIT_OK


async def purge_entry(store: HoldStore, settings: Settings, args: argparse.Namespace) -> int:
    reason = " ".join(args.reason.split())
    if not reason:
        print("gateway: --reason must say why", file=sys.stderr)
        return EXIT_USAGE
    name = hostname(settings)
    notices = Notices(settings.notify, settings.review, name, settings.web.public_url)
    purged = await queue.purge(store, notices, args.queue_id, reason, acting(args))
    if purged is None:
        print(f"gateway: no waiting queue entry {args.queue_id}", file=sys.stderr)
        return EXIT_FINDING
    relay = open_relay(settings)
    try:  # the sender hears at once; if the upstream is down, gateway serve sends it later
        await Outbox(store, Delivery(relay, store, name), settings.relay.max_connections).drain(
            time.time()
        )
    finally:
        await relay.close()
    print(f"purged {purged.id}; the sender was told")
    return EXIT_OK


def _age(seconds: float) -> str:
    if seconds >= 86400:
        return f"{seconds / 86400:.1f}d"
    return f"{seconds / 3600:.1f}h" if seconds >= 3600 else f"{max(seconds, 0) / 60:.0f}m"
