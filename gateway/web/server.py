"""Serving the review web UI with uvicorn, on the caller's event loop: inside `gateway serve`
(beside the SMTP filter) or on its own with `gateway web`. The runtime builds the app and checks
the TLS pair; this module only listens and serves.

The listening socket is bound here, not by uvicorn, so that a port in use is an ordinary
OSError; uvicorn's own signal handlers are left out, because the gateway's handle SIGTERM and
SIGINT and then stop the web server with everything else.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import uvicorn
from starlette.applications import Starlette

from gateway import logs
from gateway.config.values import HostPort

STOP_TIMEOUT = 5  # seconds for requests in progress when the gateway stops


@dataclass(frozen=True)
class TlsPair:
    """The certificate chain and key files, already loaded once to check them."""

    cert: str
    key: str


@dataclass
class Listener:
    """A bound, listening socket, and the address to show for it."""

    sock: socket.socket
    where: str

    def close(self) -> None:
        self.sock.close()


class _EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the gateway's signal handlers stop us


@dataclass
class WebServer:
    url: str
    _server: _EmbeddedServer
    _task: asyncio.Task[None]

    async def stop(self) -> None:
        self._server.should_exit = True
        try:
            await self._task
        except Exception:  # stopping must not hide why the gateway stops
            logs.get("gateway.web").exception("web server stopped with an error")


def bind(listen: HostPort) -> Listener:
    """Bind [web] listen now; OSError if the address is taken."""
    host, port = listen.host, listen.port
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    return Listener(sock, f"{shown}:{port}")


async def start(app: Starlette, listener: Listener, tls: TlsPair | None) -> WebServer:
    """Serve ``app`` on ``listener`` until ``stop()``."""
    config = uvicorn.Config(
        app,
        lifespan="off",
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=True,  # X-Forwarded-For/-Proto from a proxy on loopback only
        forwarded_allow_ips="127.0.0.1,::1",
        ssl_certfile=tls.cert if tls else None,
        ssl_keyfile=tls.key if tls else None,
        timeout_graceful_shutdown=STOP_TIMEOUT,
        timeout_keep_alive=5,
    )
    server = _EmbeddedServer(config)
    task = asyncio.create_task(server.serve(sockets=[listener.sock]), name="web-ui")
    while not server.started:
        if task.done():
            listener.close()
            task.result()  # raises what stopped it
            raise OSError(f"the web UI did not start on {listener.where}")
        await asyncio.sleep(0.01)
    url = f"{'https' if tls else 'http'}://{listener.where}/"
    return WebServer(url, server, task)
