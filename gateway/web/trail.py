"""The audit trail, searchable: every entry, newest first, and whether the hash chain holds."""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import Response

from gateway.audit import events as audit
from gateway.core.auditchain import Entry
from gateway.core.timefmt import start_of_day
from gateway.web.auth import guard
from gateway.web.context import render, web_of
from gateway.web.sessions import Session

SHOWN = 500


def _since(text: str) -> float | None:
    try:
        return start_of_day(text)
    except ValueError:
        return None


def matches(entry: Entry, words: list[str], event: str, actor: str, hold: str) -> bool:
    if event and entry.event != event:
        return False
    if actor and actor.lower() not in entry.actor.lower():
        return False
    if hold and entry.hold_id != hold:
        return False
    if words:
        data = json.dumps(dict(entry.data), ensure_ascii=False)
        haystack = " ".join([entry.event, entry.hold_id, entry.actor, data]).lower()
        return all(word in haystack for word in words)
    return True


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
    entries = list(await web.review.audit_entries())
    problem = audit.verify(entries)
    events = sorted({e.event for e in entries})
    words = text.lower().split()
    found = [
        e
        for e in reversed(entries)
        if (since is None or e.at >= since) and matches(e, words, event, actor, hold)
    ]
    return render(
        request,
        session,
        "audit.html",
        entries=found[:SHOWN],
        total=len(found),
        shown=SHOWN,
        count=len(entries),
        problem=str(problem) if problem else "",
        head=entries[-1].hash if entries else "",
        events=events,
        form={"q": text, "event": event, "actor": actor, "hold": hold, "since": since_text},
        bad_since=bool(since_text) and since is None,
    )
