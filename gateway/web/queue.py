"""The dashboard and the held queue: what waits, for how long, and what stands out."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from gateway.config.values import describe_duration
from gateway.core.addresses import AddressError, normalise_domain
from gateway.core.model import Reason
from gateway.core.reasons import label
from gateway.store import Hold, HoldOrder, HoldQuery, Status
from gateway.web.auth import guard
from gateway.web.context import render, web_of
from gateway.web.sessions import Session

WEEK = 7 * 86400
HOUR = 3600.0
PAGE = 100  # rows of the queue on one page
WAITING = 5  # the longest-waiting holds the dashboard lists

# value -> (older than, newer than, label); seconds
AGES: dict[str, tuple[float | None, float | None, str]] = {
    "": (None, None, "Any age"),
    "gt1h": (HOUR, None, "Older than 1 hour"),
    "gt4h": (4 * HOUR, None, "Older than 4 hours"),
    "gt1d": (24 * HOUR, None, "Older than 1 day"),
    "lt1h": (None, HOUR, "Newer than 1 hour"),
    "lt1d": (None, 24 * HOUR, "Newer than 1 day"),
}
SORTS = {
    "oldest": "Oldest first",
    "newest": "Newest first",
    "sender": "Sender",
    "domain": "Recipient domain",
    "reason": "Reason",
}
STATUSES = {
    "held": "Awaiting review",
    "releasing": "Release in progress",
    "released": "Released",
    "rejected": "Rejected",
    "expired": "Expired",
    "linked": "Sent by secure link",
    "all": "Any status",
}


REASONS = {reason.value: label(reason.value) for reason in Reason}


@dataclass(frozen=True)
class Row:
    hold: Hold
    age: float
    escalated: bool
    overdue: bool  # waited past [review] escalate_after


def rows(holds: Sequence[Hold], now: float, escalate_after: float) -> list[Row]:
    return [
        Row(
            h,
            now - h.created_at,
            h.escalated_at is not None and h.status is Status.HELD,
            h.status is Status.HELD and now - h.created_at >= escalate_after,
        )
        for h in holds
    ]


@guard()
async def dashboard(request: Request, session: Session) -> Response:
    web = web_of(request)
    now = web.clock()
    week = now - WEEK

    async def count(
        status: Status, escalated: bool | None = None, since: float | None = None
    ) -> int:
        query = HoldQuery(statuses=frozenset({status}), escalated=escalated, decided_after=since)
        return await web.review.count(query)

    escalate_after = web.settings.review.escalate_after
    oldest_first = HoldQuery(statuses=frozenset({Status.HELD}), limit=WAITING)
    waiting = rows(await web.review.holds(oldest_first), now, escalate_after)
    return render(
        request,
        session,
        "dashboard.html",
        held=await count(Status.HELD),
        escalated=await count(Status.HELD, escalated=True),
        releasing=await count(Status.RELEASING),
        released=await count(Status.RELEASED, since=week),
        rejected=await count(Status.REJECTED, since=week),
        linked=await count(Status.LINKED, since=week),
        expired=await count(Status.EXPIRED, since=week),
        oldest=waiting[0] if waiting else None,
        waiting=waiting,
        escalate_after=describe_duration(web.settings.review.escalate_after),
        expire_after=describe_duration(web.settings.review.expire_after),
    )


@guard()
async def queue(request: Request, session: Session) -> Response:
    web = web_of(request)
    query = request.query_params
    status = query.get("status", "held")
    status = status if status in STATUSES else "held"
    sender = query.get("sender", "").strip()[:200]
    domain = query.get("domain", "").strip()[:255]
    reason = query.get("reason", "")
    reason = reason if reason in REASONS else ""
    age = query.get("age", "")
    age = age if age in AGES else ""
    order = query.get("sort", "oldest")
    order = order if order in SORTS else "oldest"
    older, newer, _ = AGES[age]
    wanted_domain = domain.lower()
    if domain:
        with contextlib.suppress(AddressError):  # else it matches nothing, as it should
            wanted_domain = normalise_domain(domain)
    now = web.clock()
    number = _page_number(query.get("page", ""))
    wanted = HoldQuery(
        statuses=frozenset() if status == "all" else frozenset({Status(status)}),
        sender=sender,
        recipient_domain=wanted_domain,
        reason=reason,
        created_before=None if older is None else now - older,
        created_after=None if newer is None else now - newer,
        order=HoldOrder(order),
        limit=PAGE,
        offset=(number - 1) * PAGE,
    )
    holds = await web.review.holds(wanted)
    total = await web.review.count(wanted)
    escalate_after = web.settings.review.escalate_after
    filtered = bool(sender or domain or reason or age or status != "held")
    return render(
        request,
        session,
        "queue.html",
        rows=rows(holds, now, escalate_after),
        total=total,
        first=wanted.offset + 1,
        previous=_page_link(query, number - 1) if number > 1 else "",
        next=_page_link(query, number + 1) if wanted.offset + len(holds) < total else "",
        filtered=filtered,
        form={
            "status": status,
            "sender": sender,
            "domain": domain,
            "reason": reason,
            "age": age,
            "sort": order,
        },
        statuses=STATUSES,
        reasons=REASONS,
        ages={k: v[2] for k, v in AGES.items()},
        sorts=SORTS,
        escalate_after=describe_duration(web.settings.review.escalate_after),
    )


def _page_number(text: str) -> int:
    return max(1, min(int(text), 1_000_000)) if text.isdigit() else 1


def _page_link(query: Mapping[str, str], number: int) -> str:
    """The same filters, another page."""
    params = {k: v for k, v in query.items() if k != "page"}
    if number > 1:
        params["page"] = str(number)
    return "/held?" + urlencode(params) if params else "/held"
