"""Tracking: find flagged mail by sender, recipient or Message-ID, and follow one message's
path from arrival to each recipient's outcome, as `gateway trace` prints it.

The search reads the trail's ``received`` entries (one per flagged message), paged by the
store like the held queue; unflagged mail is logged, not audited, so it is never found here.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from gateway.audit.path import bare_id
from gateway.store import AuditQuery
from gateway.web.auth import guard
from gateway.web.context import render, web_of
from gateway.web.queue import _page_number
from gateway.web.sessions import Session

PAGE = 100
FIELDS = ("sender", "recipient", "message_id")


@guard()
async def search(request: Request, session: Session) -> Response:
    web = web_of(request)
    query = request.query_params
    form = {name: query.get(name, "").strip()[:200] for name in FIELDS}
    form["message_id"] = bare_id(form["message_id"])
    words = tuple(w.lower() for w in form.values() if w)
    number = _page_number(query.get("page", ""))
    found, total = [], 0
    if words:
        wanted = AuditQuery(event="received", words=words, limit=PAGE, offset=(number - 1) * PAGE)
        entries, total = await web.review.audit_page(wanted)
        found = list(entries)
    offset = (number - 1) * PAGE
    return render(
        request,
        session,
        "tracking.html",
        entries=found,
        total=total,
        searched=bool(words),
        first=offset + 1,
        previous=_page_link(query, number - 1) if number > 1 else "",
        next=_page_link(query, number + 1) if offset + len(found) < total else "",
        form=form,
    )


@guard()
async def message(request: Request, session: Session) -> Response:
    web = web_of(request)
    ident = request.path_params["ident"][:300]
    found = await web.review.path(ident)
    if found is None:
        return render(
            request,
            session,
            "error.html",
            404,
            title="Not in the audit trail",
            message=f"Nothing in the audit trail is called {ident!r}. Unflagged mail is "
            "logged, not audited, so it is never found here.",
        )
    subject = found.subject() if web.settings.notify.include_subject else ""
    return render(request, session, "tracking_message.html", found=found, subject=subject)


def _page_link(query: Mapping[str, str], number: int) -> str:
    params = {k: v for k, v in query.items() if k != "page"}
    if number > 1:
        params["page"] = str(number)
    return "/tracking?" + urlencode(params) if params else "/tracking"
