"""`gateway audit list|verify|head|export`: the audit trail from the shell, through the same
``Review`` as the web UI. Each entry is listed with its sentence (``audit.words``); ``verify``
checks the hash chain and, given a head from `gateway audit head` or the log, that the trail
still holds it.

Apart from ``held`` because the trail is a record of every event, not of one hold: its
commands read it and never change a hold."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from gateway.audit import events as audit
from gateway.audit.words import sentence
from gateway.cli.exits import EXIT_FINDING, EXIT_OK
from gateway.core.auditchain import Entry, Head, contains
from gateway.core.display import visible
from gateway.core.timefmt import iso_utc, or_dash, start_of_day
from gateway.review.model import Review
from gateway.store import AuditQuery

Wrap = Callable[[Any], Any]


def add_audit_commands(commands: Any, common: argparse.ArgumentParser, command: Wrap) -> None:
    """`gateway audit ...`; ``command`` wraps a runner as `gateway held`'s are."""
    trail = commands.add_parser("audit", parents=[common], help="the audit trail")
    trail_actions = trail.add_subparsers(dest="action", required=True, metavar="ACTION")
    trail_list = trail_actions.add_parser("list", parents=[common], help="entries")
    trail_list.add_argument("--hold", default="", metavar="ID")
    trail_list.add_argument("--since", type=_date, metavar="DATE")
    trail_list.add_argument("--json", action="store_true", help="the entries, facts and all")
    trail_list.set_defaults(run=command(audit_list))
    verify = trail_actions.add_parser("verify", parents=[common], help="check the hash chain")
    verify.add_argument(
        "--head",
        type=_head,
        metavar="SEQ:HASH",
        help="also prove the trail still holds this head (from `gateway audit head` or the log)",
    )
    verify.set_defaults(run=command(audit_verify))
    head = trail_actions.add_parser("head", parents=[common], help="where the trail ends")
    head.set_defaults(run=command(audit_head))
    export = trail_actions.add_parser("export", parents=[common], help="CSV or JSON")
    export.add_argument("--format", choices=["csv", "json"], default="csv")
    export.add_argument("--since", type=_date, metavar="DATE")
    export.set_defaults(run=command(audit_export))


def _date(text: str) -> float:
    try:
        return start_of_day(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from exc


def _head(text: str) -> Head:
    try:
        return Head.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


async def audit_list(review: Review, args: argparse.Namespace) -> int:
    """Each entry as one line ending in its sentence; ``--verbose`` (which also logs progress
    to stderr) adds its facts as JSON on the next line, ``--json`` gives every field
    (``audit export`` the chain's hashes too)."""
    query = AuditQuery(hold_id=args.hold, since=args.since, oldest_first=True)
    entries, _ = await review.audit_page(query)
    if args.json:
        found = [{**audit.entry_json(e), "sentence": _sentence(e)} for e in entries]
        # ASCII: a bidi or control character in an address is an escape, never obeyed.
        print(json.dumps(found, indent=2, ensure_ascii=True))
        return EXIT_OK
    for entry in entries:
        when = or_dash(iso_utc, entry.at)
        print(
            f"{entry.seq:>6}  {when}  {entry.event:<17}  {entry.hold_id or '-':<16}"
            f"  {visible(entry.actor):<16}  {visible(_sentence(entry))}"
        )
        if getattr(args, "verbose", False):  # the common --verbose: the facts as well
            facts = json.dumps(dict(entry.data), sort_keys=True, ensure_ascii=False)
            print(f"{'':8}{visible(facts)}")
    return EXIT_OK


def _sentence(entry: Entry) -> str:
    return sentence(entry.event, entry.actor, entry.hold_id, entry.data)


async def audit_verify(review: Review, args: argparse.Namespace) -> int:
    count, problem = await review.verify_audit()
    if problem is not None:
        print(f"audit trail BROKEN at {problem}")
        return EXIT_FINDING
    last = await review.audit_head()
    witnessed: Head | None = args.head
    if witnessed is not None:
        found = await review.audit_entry(witnessed.seq)
        missing = contains(witnessed, found, last[0] if last else 0)
        if missing is not None:
            print(f"audit trail does NOT contain head {witnessed}: {missing}")
            return EXIT_FINDING
    print(f"audit trail intact: {count} entries, head {last[1] if last else '(empty)'}")
    if witnessed is not None:
        print(f"it contains head {witnessed}")
    return EXIT_OK


async def audit_head(review: Review, args: argparse.Namespace) -> int:
    """The head as ``SEQ:HASH``, the form ``audit verify --head`` takes."""
    last = await review.audit_head()
    if last is None:
        print("the audit trail is empty", file=sys.stderr)
        return EXIT_FINDING
    print(Head(*last))
    return EXIT_OK


async def audit_export(review: Review, args: argparse.Namespace) -> int:
    sys.stdout.write(audit.export(await review.audit_entries(args.since), args.format))
    return EXIT_OK
