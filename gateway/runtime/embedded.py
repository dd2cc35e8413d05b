"""An ASGI app served inside `gateway serve` on a port of its own (the web UI, the portal):
built and its TLS pair loaded before anything listens, its port bound with the SMTP port,
served once the workers are up. A port in use, or a listener that will not start, is logged
and the SMTP filter runs on without it: mail keeps flowing."""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from typing import Any

from starlette.applications import Starlette

from gateway.config.settings import Settings
from gateway.config.values import HostPort
from gateway.errors import ConfigError
from gateway.runtime.inuse import explained
from gateway.web import server


def load_tls_pair(settings: Settings, section: str) -> server.TlsPair | None:
    """The certificate and key of ``[section] tls_cert`` / ``tls_key``, loaded now so that a
    mistake stops the start with the key's name, before anything listens, rather than failing
    in the middle of serving. (``loader.load`` has seen both or neither.)"""
    values = getattr(settings, section)
    if not values.tls_cert:
        return None
    cert_path, key_path = str(settings.path(values.tls_cert)), str(settings.path(values.tls_key))
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert_path, key_path)
    except (OSError, ssl.SSLError) as exc:
        problem = f"cannot load {cert_path} with {key_path}: {exc}"
        raise ConfigError(f"{section}.tls_cert", problem) from exc
    return server.TlsPair(cert_path, key_path)


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
