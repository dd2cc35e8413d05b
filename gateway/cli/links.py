"""`gateway held send-link|links|revoke-link`: secure links from the shell, through the same
``Review`` as the web UI. A link is shown by its id and state, never by its token (the store
does not have it: only the recipient's email does)."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from gateway.cli.actor import acting
from gateway.cli.exits import EXIT_OK
from gateway.core.display import visible
from gateway.core.securelink import LinkState
from gateway.core.timefmt import iso_utc, or_dash
from gateway.review.links import state_of
from gateway.review.model import Review
from gateway.store import Hold
from gateway.store.links import Link

Wrap = Callable[[Any], Any]


def add_link_commands(actions: Any, common: argparse.ArgumentParser, command: Wrap) -> None:
    """The link actions of `gateway held`; ``command`` wraps a runner as the others are."""
    send = actions.add_parser(
        "send-link",
        parents=[common],
        help="send by secure link to its held recipients; needs a written rationale",
    )
    send.add_argument("hold_id", metavar="ID")
    send.add_argument("--reason", required=True, metavar="TEXT")
    send.add_argument("--by", default=None, help="who decided (default: your user name)")
    send.set_defaults(run=command(send_link))

    listing = actions.add_parser("links", parents=[common], help="a hold's secure links")
    listing.add_argument("hold_id", metavar="ID")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(run=command(list_links))

    revoke = actions.add_parser(
        "revoke-link", parents=[common], help="stop a secure link from opening the message"
    )
    revoke.add_argument("link_id", metavar="LINK_ID")
    revoke.add_argument("--reason", required=True, metavar="TEXT")
    revoke.add_argument("--by", default=None, help="who revoked it (default: your user name)")
    revoke.set_defaults(run=command(revoke_link))


def _when(timestamp: float | None) -> str:
    return or_dash(iso_utc, timestamp)


def link_json(link: Link, hold: Hold, now: float) -> dict[str, Any]:
    return {
        "id": link.id,
        "hold_id": link.hold_id,
        "recipient": link.recipient,
        "state": state_of(link, hold, now).value,
        "created_at": _when(link.created_at),
        "created_by": link.created_by,
        "expires_at": _when(link.expires_at),
        "opened_at": _when(link.opened_at) if link.opened_at else None,
        "codes_sent": link.code.sent,
        "wrong_codes": link.code.attempts,
        "locked_at": _when(link.locked_at) if link.locked_at else None,
        "revoked_at": _when(link.revoked_at) if link.revoked_at else None,
        "revoked_by": link.revoked_by or None,
        "unopened_noticed_at": (
            _when(link.unopened_noticed_at) if link.unopened_noticed_at else None
        ),
    }


def link_words(link: Link, hold: Hold, now: float) -> str:
    """ "LABCDEFGHIJ to a@b.test: active, opened 2026-12-01T10:02:00+00:00, 1 code sent"."""
    state = state_of(link, hold, now)
    said = [state.value]
    if state is LinkState.REVOKED:
        said[0] = f"revoked by {link.revoked_by} at {_when(link.revoked_at)}"
    elif state is LinkState.EXPIRED:
        said[0] = f"expired at {_when(link.expires_at)}"
    elif state is LinkState.ACTIVE:
        said[0] = f"active until {_when(link.expires_at)}"
    said.append(f"opened {_when(link.opened_at)}" if link.opened_at else "not opened")
    said.append(f"{link.code.sent} code{'s' * (link.code.sent != 1)} sent")
    if link.code.attempts:
        said.append(f"{link.code.attempts} wrong")
    return f"{link.id} to {link.recipient}: {', '.join(said)}"


def link_lines(links: Sequence[Link], hold: Hold, now: float) -> list[str]:
    """For `held show`: the hold's links, one line each (none: nothing)."""
    if not links:
        return []
    return ["Secure links:", *(f"  {link_words(link, hold, now)}" for link in links)]


async def send_link(review: Review, args: argparse.Namespace) -> int:
    hold, links = await review.send_link(args.hold_id, args.reason, acting(args))
    # The recipients' emails go now; if the upstream is down, gateway serve sends them later.
    await review.drain_notices()
    sent = ", ".join(f"{link.recipient} ({link.id})" for link in links)
    print(visible(f"sent {hold.id} by secure link to {sent}"))
    return EXIT_OK


async def list_links(review: Review, args: argparse.Namespace) -> int:
    hold = await review.get(args.hold_id)
    links = await review.links(hold.id)
    now = time.time()
    if args.json:
        print(json.dumps([link_json(link, hold, now) for link in links], indent=2))
        return EXIT_OK
    if not links:
        print(f"{hold.id} has no secure links")
        return EXIT_OK
    print(visible("\n".join(link_words(link, hold, now) for link in links)))
    return EXIT_OK


async def revoke_link(review: Review, args: argparse.Namespace) -> int:
    link = await review.revoke_link(args.link_id, args.reason, acting(args))
    print(visible(f"revoked {link.id} to {link.recipient}; the portal now says so"))
    return EXIT_OK
