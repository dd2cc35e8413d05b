"""The dashboard and the held queue: what waits, for how long, and what stands out."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from gateway.config.values import describe_duration
from gateway.core.addresses import AddressError, normalise_domain
from gateway.core.model import Reason
from gateway.core.reasons import label
from gateway.review.model import HoldFilter
from gateway.store import Hold, Status
from gateway.web.auth import guard
from gateway.web.context import render, web_of
from gateway.web.sessions import Session

WEEK = 7 * 86400
HOUR = 3600.0

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


def _first_domain(hold: Hold) -> str:
    return hold.recipients[0].domain if hold.recipients else ""


def sort_holds(holds: list[Hold], order: str) -> list[Hold]:
    keys = {
        "newest": lambda h: -h.created_at,
        "sender": lambda h: (h.sender.lower(), h.created_at),
        "domain": lambda h: (_first_domain(h), h.created_at),
        "reason": lambda h: (h.reasons[0] if h.reasons else "", h.created_at),
    }
    return sorted(holds, key=keys.get(order, lambda h: h.created_at))


@guard()
async def dashboard(request: Request, session: Session) -> Response:
    web = web_of(request)
    now = web.clock()
    holds = await web.review.holds(HoldFilter(status=None))
    held = [h for h in holds if h.status is Status.HELD]
    week = now - WEEK

    def this_week(status: Status) -> int:
        return sum(1 for h in holds if h.status is status and (h.decided_at or 0) >= week)

    escalate_after = web.settings.review.escalate_after
    waiting = rows(sorted(held, key=lambda h: h.created_at), now, escalate_after)
    return render(
        request,
        session,
        "dashboard.html",
        held=len(held),
        escalated=sum(1 for h in held if h.escalated_at is not None),
        releasing=sum(1 for h in holds if h.status is Status.RELEASING),
        released=this_week(Status.RELEASED),
        rejected=this_week(Status.REJECTED),
        expired=this_week(Status.EXPIRED),
        oldest=waiting[0] if waiting else None,
        waiting=waiting[:5],
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
    holds = await web.review.holds(
        HoldFilter(
            status=None if status == "all" else Status(status),
            sender=sender,
            recipient_domain=wanted_domain,
            reason=reason,
            older_than=older,
            newer_than=newer,
        )
    )
    escalate_after = web.settings.review.escalate_after
    filtered = bool(sender or domain or reason or age or status != "held")
    return render(
        request,
        session,
        "queue.html",
        rows=rows(sort_holds(list(holds), order), web.clock(), escalate_after),
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
