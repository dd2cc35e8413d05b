"""`gateway trace ID [--json]`: a message's path from arrival to each recipient's final outcome,
read from the audit trail and the holds (``gateway.audit.path``). ID is a queue id, a hold id
or a Message-ID, with or without its angle brackets.

Never the body; the subject only when ``[notify] include_subject`` is set (a hold keeps it only
then). An unknown ID exits as `gateway held show` does for an unknown hold."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from gateway.audit.path import MessagePath
from gateway.cli.exits import EXIT_OK, EXIT_USAGE
from gateway.config.settings import Settings
from gateway.core.display import visible
from gateway.core.timefmt import iso_utc
from gateway.runtime.parts import review_session

NOT_FOUND = "is not in the audit trail (unflagged mail is logged, not audited)"


def add_command(commands: Any, common: argparse.ArgumentParser) -> None:
    trace = commands.add_parser(
        "trace", parents=[common], help="how a message went: arrival, verdicts, delivery"
    )
    trace.add_argument("ident", metavar="ID", help="a queue id, hold id or Message-ID")
    trace.add_argument("--json", action="store_true", help="print the stable JSON form")
    trace.set_defaults(run=run_trace)


def run_trace(args: argparse.Namespace, settings: Settings) -> int:
    async def read() -> MessagePath | None:
        async with review_session(settings) as review:
            return await review.path(args.ident)

    found = asyncio.run(read())
    if found is None:
        print(f"gateway: {args.ident!r} {NOT_FOUND}", file=sys.stderr)
        return EXIT_USAGE
    subject = found.subject() if settings.notify.include_subject else ""
    if args.json:
        # ensure_ascii: every control character is escaped, never sent to a terminal raw.
        print(json.dumps(path_json(found, subject), indent=2, ensure_ascii=True))
    else:
        print(visible("\n".join(path_lines(found, subject))))
    return EXIT_OK


def path_json(path: MessagePath, subject: str = "") -> dict[str, Any]:
    data: dict[str, Any] = {
        "message_id": path.message_id,
        "sender": path.sender,
        "queue_ids": list(path.queue_ids),
        "holds": [{"id": h.id, "status": h.status.value} for h in path.holds],
        "steps": [
            {
                "time": iso_utc(s.at),
                "event": s.event,
                "hold_id": s.hold_id,
                "text": s.text,
                "data": dict(s.data),
            }
            for s in path.steps
        ],
        "outcomes": dict(path.outcomes),
    }
    if subject:
        data["subject"] = subject
    return data


def path_lines(path: MessagePath, subject: str = "") -> list[str]:
    lines = [f"Message {path.message_id or '(no Message-ID)'} from {path.sender or '<>'}"]
    if subject:
        lines.append(f"Subject: {subject}")
    if path.queue_ids:
        lines.append(f"Queue id: {', '.join(path.queue_ids)}")
    for hold in path.holds:
        lines.append(f"Hold {hold.id}: {hold.status.value}")
    lines += ["", "Path:"]
    lines += [f"  {iso_utc(s.at)}  {s.event:<17}  {s.text}" for s in path.steps]
    for step in path.steps:
        skipped = step.data.get("skipped") if step.event == "delivered" else None
        if skipped:
            lines.append(f"    passed over for {step.data.get('recipient')}: {'; '.join(skipped)}")
    lines += ["", "Outcome per recipient:"]
    lines += [f"  {address}: {outcome}" for address, outcome in path.outcomes.items()]
    return lines
