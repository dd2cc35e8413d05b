"""An ASGI app served inside `gateway serve` on a port of its own (the web UI, the portal):
built and its TLS pair loaded before anything listens, its port bound with the SMTP port,
served once the workers are up. A port in use, or a listener that will not start, is logged
and the SMTP filter runs on without it: mail keeps flowing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.applications import Starlette

from gateway.config.values import HostPort
from gateway.runtime.inuse import explained
from gateway.web import server


class EmbeddedApp:
    def __init__(
        self,
        what: str,  # "web UI", "portal": how the log names it
        key: str,  # the setting of its address, for the "in use" explanation
        listen: HostPort,
        app: Starlette,
        tls: server.TlsPair | None,
        proxies: Sequence[str],
        log: Any,
    ) -> None:
        self._what, self._key, self._listen = what, key, listen
        self._app, self._tls, self._proxies = app, tls, proxies
        self._listener: server.Listener | None = None
        self._server: server.WebServer | None = None
        self._log = log

    def bind(self) -> None:
        try:
            self._listener = server.bind(self._listen)
        except OSError as exc:
            problem = explained(exc, self._listen, self._key)
            self._log.error(
                f"{self._what} not started", listen=str(self._listen), error=str(problem)
            )

    async def start(self) -> None:
        if self._listener is None:
            return
        try:
            self._server = await server.start(self._app, self._listener, self._tls, self._proxies)
        except OSError as exc:
            self._not_started(exc)
            return
        self._log.info(f"{self._what} listening", url=self._server.url)

    def _not_started(self, problem: Exception) -> None:
        self._log.error(f"{self._what} not started", listen=str(self._listen), error=str(problem))

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop()
            self._server = None
        elif self._listener is not None:
            self._listener.close()
        self._listener = None
