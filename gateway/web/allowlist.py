"""The allowlist, read-only, with each domain's live posture: the same assessment as
`gateway check`, and its text report for one domain on request; beside it, each entry's last
active probe (`gateway allowlist check --live`), from the store; and when the list in force
was read, from which files (SIGHUP reads them again)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from gateway.core.addresses import AddressError, normalise_domain
from gateway.core.allowlist import AllowlistEntry
from gateway.core.policy import today_utc
from gateway.posture import report
from gateway.posture.assessment import Assessment, Posture
from gateway.web.auth import guard
from gateway.web.context import render, web_of
from gateway.web.sessions import Session

FRESH_FOR = 60.0  # seconds an assessment is shown again without asking DNS anew
CONCURRENCY = 8


@dataclass(frozen=True)
class Line:
    entry: AllowlistEntry
    assessment: Assessment | None  # None for a *.wildcard: checked per recipient domain
    expired: bool
    error: str = ""


class PostureCache:
    def __init__(self) -> None:
        self._found: dict[str, tuple[float, Assessment]] = {}
        self._limit = asyncio.Semaphore(CONCURRENCY)
        self._list: object = None

    async def assess(self, posture: Posture, domain: str, now: float) -> Assessment:
        if posture.in_force is not self._list:  # reloaded: the entries' matches changed
            self._found.clear()
            self._list = posture.in_force
        cached = self._found.get(domain)
        if cached is not None and now - cached[0] < FRESH_FOR:
            return cached[1]
        async with self._limit:
            assessment = await posture.assess(domain)
        self._found[domain] = (now, assessment)
        return assessment


async def _line(cache: PostureCache, posture: Posture, entry: AllowlistEntry, now: float) -> Line:
    expired = entry.expired(today_utc(now))
    if entry.wildcard:
        return Line(entry, None, expired)
    try:
        return Line(entry, await cache.assess(posture, entry.domain, now), expired)
    except Exception as exc:  # one domain's failure must not hide the others
        return Line(entry, None, expired, error=str(exc) or type(exc).__name__)


def _cache(request: Request) -> PostureCache:
    state = request.app.state
    if not hasattr(state, "posture_cache"):
        state.posture_cache = PostureCache()
    cache = state.posture_cache
    assert isinstance(cache, PostureCache)
    return cache


@guard()
async def page(request: Request, session: Session) -> Response:
    web = web_of(request)
    posture = web.posture
    if posture is None:
        return render(request, session, "allowlist.html", lines=[], unavailable=True, minimum="")
    now = web.clock()
    cache = _cache(request)
    in_force = posture.in_force  # once: a reload while the page is built shows next time
    entries = sorted(in_force.allowlist.entries, key=lambda e: e.domain)
    lines = await asyncio.gather(*(_line(cache, posture, e, now) for e in entries))
    return render(
        request,
        session,
        "allowlist.html",
        lines=lines,
        unavailable=False,
        minimum=web.settings.policy.minimum_transport,
        probes=await web.store.last_probes(),
        in_force=in_force,
    )


@guard()
async def check(request: Request, session: Session) -> Response:
    web = web_of(request)
    asked = request.query_params.get("domain", "").strip()[:255]
    problem, assessment, text = "", None, ""
    if web.posture is None:
        problem = "Live checks are not available here."
    elif asked:
        try:
            domain = normalise_domain(asked)
        except AddressError as exc:
            problem = f"{asked!r} is not a domain: {exc}"
        else:
            assessment = await _cache(request).assess(web.posture, domain, web.clock())
            text = report.to_text([assessment])
    return render(
        request,
        session,
        "domain.html",
        asked=asked,
        problem=problem,
        assessment=assessment,
        report=text,
    )
