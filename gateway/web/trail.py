"""The audit trail, searchable: every entry, newest first, and whether the hash chain holds."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from gateway.core.timefmt import start_of_day
from gateway.store import AuditQuery
from gateway.web.auth import guard
from gateway.web.context import render, web_of
from gateway.web.sessions import Session

SHOWN = 500


def _since(text: str) -> float | None:
    try:
        return start_of_day(text)
    except ValueError:
        return None


@guard()
async def trail(request: Request, session: Session) -> Response:
    web = web_of(request)
    query = request.query_params
    text = query.get("q", "").strip()[:200]
    event = query.get("event", "")
    actor = query.get("actor", "").strip()[:200]
    hold = query.get("hold", "").strip()[:64]
    since_text = query.get("since", "").strip()
    since = _since(since_text) if since_text else None
    wanted = AuditQuery(
        hold_id=hold,
        event=event,
        actor=actor,
        words=tuple(text.lower().split()),
        since=since,
        limit=SHOWN,
    )
    found, total = await web.review.audit_page(wanted)
    count, problem = await web.review.verify_audit()
    head = await web.review.audit_head()
    return render(
        request,
        session,
        "audit.html",
        entries=found,
        total=total,
        shown=SHOWN,
        count=count,
        problem=str(problem) if problem else "",
        head=head[1] if head else "",
        events=await web.review.audit_events(),
        form={"q": text, "event": event, "actor": actor, "hold": hold, "since": since_text},
        bad_since=bool(since_text) and since is None,
    )
