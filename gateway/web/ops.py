"""For the people who run the gateway: /healthz (open) and /metrics (Prometheus text format;
a signed-in session or ``Authorization: Bearer <[web] metrics_token>``)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from gateway import metrics
from gateway.web.auth import current_session
from gateway.web.context import web_of
from gateway.web.security import same_token


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok\n")


async def metrics_page(request: Request) -> Response:
    web = web_of(request)
    token = web.settings.web.metrics_token.reveal()
    given = request.headers.get("authorization", "")
    scheme, _, credentials = given.partition(" ")
    if given:
        if not (token and scheme.lower() == "bearer" and same_token(credentials.strip(), token)):
            return PlainTextResponse(
                "A valid bearer token is needed.\n",
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="gateway metrics"'},
            )
    elif await current_session(request) is None:
        return RedirectResponse("/signin?next=/metrics", 303)
    await web.review.refresh_gauges()
    return Response(metrics.render(), media_type=metrics.CONTENT_TYPE)
