"""What every page handler reaches: the review model, the store (for the audit trail), the
accounts, the sessions, the templates. Built once by the runtime (``gateway.runtime.webui``)
and handed to ``gateway.web.app.create_app``."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import jinja2
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse

from gateway import logs
from gateway.accounts.users import Accounts, Throttle
from gateway.config.settings import Settings
from gateway.posture.assessment import Posture
from gateway.review.model import Review
from gateway.store import AuditRecord, HoldStore
from gateway.web.sessions import Flash, Session, Sessions


@dataclass
class Web:
    settings: Settings
    review: Review
    store: HoldStore
    accounts: Accounts
    throttle: Throttle
    sessions: Sessions
    templates: jinja2.Environment
    posture: Posture | None = None
    # After a release or reject: get the notices out (serve wakes its scheduler; on its own,
    # the web UI sends them itself, as the command line does).
    after_decision: Callable[[], Awaitable[object]] | None = None
    clock: Callable[[], float] = time.time
    log: Any = field(default_factory=lambda: logs.get("gateway.web"))

    async def audit(self, records: Sequence[AuditRecord]) -> None:
        await self.store.append_audit(records)

    async def decided(self) -> None:
        if self.after_decision is not None:
            await self.after_decision()
        else:
            await self.review.drain_notices()

    async def blocking(self, work: Callable[[], Any]) -> Any:
        """Run SQLite and argon2 work off the event loop."""
        return await run_in_threadpool(work)


def web_of(request: Request) -> Web:
    web = request.app.state.web
    assert isinstance(web, Web)
    return web


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def render(
    request: Request,
    session: Session | None,
    template: str,
    status: int = 200,
    flash: Flash | None = None,
    **context: Any,
) -> HTMLResponse:
    web = web_of(request)
    page = web.templates.get_template(template).render(
        request=request,
        session=session,
        user=session.user if session else None,
        csrf=session.csrf if session else "",
        flash=flash or (session.flash if session else None),
        path=request.url.path,
        **context,
    )
    return HTMLResponse(page, status_code=status)
