"""A minimal HTTPS/1.1 server on loopback for policy-fetch tests.

It reads a request head, answers with a fixed response (or whatever ``respond`` returns) and
either keeps the connection open for the next request (``keep_alive``, the default, as real
web servers do) or closes it. It records every request with the TLS server name (SNI) the
client sent on that connection.

    async with HttpsServer(cert_file, key_file, body=b"version: STSv1\\n...") as server:
        server.port, server.requests
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType


@dataclass(frozen=True)
class Request:
    method: str
    target: str
    headers: dict[str, str]  # names lower-cased
    sni: str | None
    connection: int  # 1 for the first connection accepted, 2 for the next, ...


@dataclass(frozen=True)
class Response:
    status: int = 200
    reason: str = "OK"
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "text/plain"})
    body: bytes = b""


class HttpsServer:
    def __init__(
        self,
        cert_file: Path,
        key_file: Path,
        *,
        body: bytes = b"",
        respond: Callable[[Request], Response] | None = None,
        keep_alive: bool = True,
        host: str = "127.0.0.1",
    ) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(str(cert_file), str(key_file))
        self.context.sni_callback = self._remember_sni
        self._respond = respond or (lambda _request: Response(body=body))
        self.keep_alive = keep_alive
        self.host = host
        self.port = 0
        self.requests: list[Request] = []
        self.connections = 0
        self._sni: dict[int, str | None] = {}
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> HttpsServer:
        self._server = await asyncio.start_server(
            self._serve, self.host, 0, ssl=self.context, ssl_handshake_timeout=5
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    def _remember_sni(self, ssl_object: object, server_name: str | None, _: object) -> None:
        self._sni[id(ssl_object)] = server_name

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        self.connections += 1
        number = self.connections
        sni = self._sni.get(id(writer.get_extra_info("ssl_object")))
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
                    return
                request = _parse_head(head, sni, number)
                self.requests.append(request)
                response = self._respond(request)
                writer.write(_response_bytes(response, self.keep_alive))
                await writer.drain()
                if not self.keep_alive:
                    return
        except (OSError, asyncio.CancelledError):
            return
        finally:
            self._tasks.discard(task)
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(OSError, asyncio.CancelledError):
                await writer.wait_closed()


def _parse_head(head: bytes, sni: str | None, connection: int) -> Request:
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return Request(method, target, headers, sni, connection)


def _response_bytes(response: Response, keep_alive: bool) -> bytes:
    headers = dict(response.headers)
    headers["Content-Length"] = str(len(response.body))
    headers["Connection"] = "keep-alive" if keep_alive else "close"
    head = f"HTTP/1.1 {response.status} {response.reason}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return head.encode("latin-1") + b"\r\n" + response.body


__all__ = ["HttpsServer", "Request", "Response"]
