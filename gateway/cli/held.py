"""`gateway held ...`: the review of held mail from the shell. A second face of
``gateway.review``, never a second implementation; `gateway audit ...` is ``cli.audit``'s."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

from gateway.cli.actor import acting
from gateway.cli.audit import add_audit_commands
from gateway.cli.exits import EXIT_FINDING, EXIT_OK, EXIT_USAGE
from gateway.cli.links import add_link_commands, link_json, link_lines
from gateway.config.settings import Settings
from gateway.config.values import parse_duration
from gateway.core.display import visible
from gateway.core.reasons import sender_words
from gateway.core.timefmt import iso_utc, or_dash
from gateway.errors import GatewayError, ReviewError
from gateway.review.model import Review
from gateway.runtime.parts import review_session
from gateway.store import HeldRecipient, Hold, HoldQuery, Status, schema

Runner = Callable[[Review, argparse.Namespace], Coroutine[Any, Any, int]]


def _duration(text: str) -> float:
    """``--older-than``: a duration with its unit, as in the configuration; a bare number is
    refused, since hours and days are both likely."""
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc} (a number and s, m, h, d or w)") from exc


def add_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    held = commands.add_parser("held", parents=[common], help="review held messages")
    actions = held.add_subparsers(dest="action", required=True, metavar="ACTION")

    listing = actions.add_parser("list", parents=[common], help="list holds")
    listing.add_argument("--status", choices=[s.value for s in Status] + ["all"], default="held")
    listing.add_argument("--sender", default="", help="part of the sender's address")
    listing.add_argument("--domain", default="", help="a recipient domain")
    listing.add_argument("--reason", default="", help="a reason code, e.g. sts-no-record")
    listing.add_argument(
        "--older-than",
        type=_duration,
        metavar="DURATION",
        help="held at least this long, with its unit: 90m, 4h, 7d",
    )
    listing.add_argument("--limit", type=int, default=None, metavar="N", help="at most N holds")
    listing.add_argument("--offset", type=int, default=0, metavar="N", help="skip the first N")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(run=_command(list_holds))

    show = actions.add_parser("show", parents=[common], help="show one held message")
    show.add_argument("hold_id", metavar="ID")
    show.add_argument("--by", default=None, help="who is looking (default: your user name)")
    show.add_argument("--json", action="store_true")
    show.set_defaults(run=_command(show_hold))

    for name, helptext in (
        ("release", "relay to its held recipients; needs a written rationale"),
        ("reject", "do not send; the sender is told the reason"),
    ):
        decide = actions.add_parser(name, parents=[common], help=helptext)
        decide.add_argument("hold_id", metavar="ID")
        decide.add_argument("--reason", required=True, metavar="TEXT")
        decide.add_argument("--by", default=None, help="who decided (default: your user name)")
        decide.set_defaults(run=_command(release if name == "release" else reject))

    add_link_commands(actions, common, _command)

    purge = actions.add_parser("purge", parents=[common], help="delete decided bodies")
    purge.add_argument(
        "--older-than",
        type=_duration,
        required=True,
        metavar="DURATION",
        help="decided at least this long ago, with its unit: 12h, 30d, 2w",
    )
    purge.add_argument("--by", default=None)
    purge.set_defaults(run=_command(purge_bodies))

    sweep = actions.add_parser("sweep", parents=[common], help="escalate, expire, retry once")
    sweep.set_defaults(run=_command(sweep_once))

    add_audit_commands(commands, common, _command)


def _command(runner: Runner) -> Callable[[argparse.Namespace, Settings], int]:
    def run(args: argparse.Namespace, settings: Settings) -> int:
        async def go() -> int:
            async with review_session(settings) as review:
                return await runner(review, args)

        try:
            return asyncio.run(go())
        except ReviewError as exc:
            print(f"gateway: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except GatewayError as exc:
            print(f"gateway: {exc}", file=sys.stderr)
            return EXIT_FINDING

    return run


def _by(args: argparse.Namespace) -> str:
    return acting(args)


def _age(hold: Hold) -> str:
    hours = (time.time() - hold.created_at) / 3600
    return f"{hours:.1f}h" if hours < 48 else f"{hours / 24:.1f}d"


def _when(timestamp: float | None) -> str:
    return or_dash(iso_utc, timestamp)


def hold_json(hold: Hold) -> dict[str, Any]:
    return {
        "id": hold.id,
        "status": hold.status.value,
        "created_at": _when(hold.created_at),
        "sender": hold.sender,
        "recipients": [
            {"address": r.address, "domain": r.domain, "reasons": list(r.reasons)}
            for r in hold.recipients
        ],
        "size": hold.size,
        "client": hold.client,
        "message_id": hold.message_id,
        "findings": list(hold.findings),
        "escalated_at": _when(hold.escalated_at) if hold.escalated_at else None,
        "decided_at": _when(hold.decided_at) if hold.decided_at else None,
        "decided_by": hold.decided_by or None,
        "decision": hold.decision or None,
        "delivered": list(hold.delivered),
        "refused": hold.refused,
        "purged": hold.purged_at is not None,
        "last_error": hold.last_error or None,
        "assessments": [schema.assessment_json(a) for a in hold.facts.assessments],
        "upstream_refusals": dict(hold.facts.upstream_refusals),
        "delivery_hosts": {k: list(v) for k, v in hold.facts.delivery_hosts.items()},
    }


async def list_holds(review: Review, args: argparse.Namespace) -> int:
    older = args.older_than
    holds = await review.holds(
        HoldQuery(
            statuses=frozenset() if args.status == "all" else frozenset({Status(args.status)}),
            sender=args.sender,
            recipient_domain=args.domain.lower(),
            reason=args.reason,
            created_before=time.time() - older if older is not None else None,
            limit=args.limit,
            offset=args.offset,
        )
    )
    if args.json:
        print(json.dumps([hold_json(h) for h in holds], indent=2))
        return EXIT_OK
    if not holds:
        print("no holds")
        return EXIT_OK
    print(f"{'ID':<16}  {'AGE':>6}  {'STATUS':<9}  {'FROM':<28}  {'TO':<28}  REASONS")
    for hold in holds:
        flag = " (escalated)" if hold.escalated_at and hold.status is Status.HELD else ""
        to = ", ".join(r.address for r in hold.recipients)
        print(
            f"{hold.id:<16}  {_age(hold):>6}  {hold.status.value:<9}  "
            f"{hold.sender[:28]:<28}  {to[:28]:<28}  {', '.join(hold.reasons)}{flag}"
        )
    return EXIT_OK


async def show_hold(review: Review, args: argparse.Namespace) -> int:
    hold, message = await review.show(args.hold_id, _by(args))
    links = await review.links(hold.id)
    if args.json:
        data = hold_json(hold)
        data["links"] = [link_json(link, hold, time.time()) for link in links]
        if message is not None:
            data["headers"] = [list(h) for h in message.headers]
            data["text"] = message.text
            data["attachments"] = [
                {"filename": a.filename, "content_type": a.content_type, "size": a.size}
                for a in message.attachments
            ]
        # ensure_ascii: every control character, C1 (U+0080-009F) too, is escaped.
        print(json.dumps(data, indent=2, ensure_ascii=True))
        return EXIT_OK
    lines = [
        f"Hold {hold.id}: {hold.status.value}, held {_when(hold.created_at)} ({_age(hold)} ago)",
        f"From (envelope): {hold.sender or '<>'}",
        f"Sent from: {hold.client or '-'}",
        "Held recipients:",
    ]
    for recipient in hold.recipients:
        # Each reason as the sender was told it, with the code to filter by (--reason).
        lines.append(f"  {recipient.address}: {_reasons_in_words(recipient)}")
    lines.append(f"Why flagged: {', '.join(hold.findings) or '(all mail is checked)'}")
    lines += [f"  {line}" for line in assessment_lines(hold)]
    if hold.decided_by:
        lines.append(f"Decided by {hold.decided_by} at {_when(hold.decided_at)}: {hold.decision}")
    if hold.last_error:
        lines.append(f"Last delivery error: {hold.last_error}")
    lines += link_lines(links, hold, time.time())
    route = review.release_route(hold)
    if route:
        lines.append(f"{route}.")
    if message is None:
        lines.append("The body was purged after the retention period.")
    else:
        lines += ["", "Headers:"]
        lines += [f"  {name}: {value}" for name, value in message.headers]
        lines += ["", f"Text ({message.text_source}):", message.text]
        if message.truncated:
            lines.append("[... cut: the text is longer than shown]")
        lines.append("")
        lines.append("Attachments:" if message.attachments else "Attachments: none")
        lines += [f"  {a.filename} ({a.content_type}, {a.size} bytes)" for a in message.attachments]
    # A held message may carry terminal escape sequences; show them, never obey them.
    print(visible("\n".join(lines)))
    return EXIT_OK


def assessment_lines(hold: Hold) -> list[str]:
    """What the gateway found about each held recipient domain when it held the message."""
    lines = []
    for a in hold.facts.assessments:
        mx = ", ".join(a.mx_hosts) or a.mx_status or "-"
        sts = f"MTA-STS {a.sts_mode or a.sts_policy or a.sts_record or '-'}"
        lines.append(f"{a.domain}: {a.verdict} via {a.transport}; MX {mx}; {sts}; DANE {a.dane}")
    for address, reply in hold.facts.upstream_refusals.items():
        lines.append(f"{address}: the upstream refused it: {reply}")
    for address, hosts in hold.facts.delivery_hosts.items():
        lines.append(f"{address}: not delivered directly; each MX host tried:")
        lines += [f"  {host}" for host in hosts]
    return lines


async def _send_notices(review: Review) -> None:
    # The sender hears at once; if the upstream is down, the outbox keeps the notice and
    # gateway serve sends it later.
    await review.drain_notices()
    await _witness(review)


async def _witness(review: Review) -> None:
    """Say where the audit trail now ends; gateway serve logs it too at its next sweep, so a
    copy of either shows if the end is ever cut off."""
    head = await review.audit_head()
    if head is not None:
        print(f"audit trail head: entry {head[0]}, {head[1]}", file=sys.stderr)


async def release(review: Review, args: argparse.Namespace) -> int:
    outcome = await review.release(args.hold_id, args.reason, _by(args))
    await _send_notices(review)
    if outcome.done:
        print(f"released {outcome.hold.id}: sent to {', '.join(outcome.delivered) or 'nobody'}")
        for address, reply in outcome.refused.items():
            print(f"  the upstream refused {address}: {reply}")
        return EXIT_OK if not outcome.refused else EXIT_FINDING
    print(
        f"release of {outcome.hold.id} is pending: {outcome.error}. "
        "The decision is recorded; delivery will be retried (gateway serve retries it, "
        "or run this command again)."
    )
    return EXIT_FINDING


async def reject(review: Review, args: argparse.Namespace) -> int:
    hold = await review.reject(args.hold_id, args.reason, _by(args))
    await _send_notices(review)
    print(f"rejected {hold.id}; the sender will be told the reason")
    return EXIT_OK


async def purge_bodies(review: Review, args: argparse.Namespace) -> int:
    purged = await review.purge(args.older_than, _by(args))
    await _witness(review)
    print(f"purged {len(purged)} bod{'y' if len(purged) == 1 else 'ies'}")
    return EXIT_OK


async def sweep_once(review: Review, args: argparse.Namespace) -> int:
    report = await review.sweep()
    print(
        f"escalated {len(report.escalated)}, expired {len(report.expired)}, "
        f"released {len(report.released)}, purged {len(report.purged)}, "
        f"notices sent {report.notices_sent}"
    )
    return EXIT_OK


def _reasons_in_words(recipient: HeldRecipient) -> str:
    words = [
        f"{sender_words(r, recipient.domain, recipient.address)} ({r})" for r in recipient.reasons
    ]
    return "; ".join(words) or "-"
