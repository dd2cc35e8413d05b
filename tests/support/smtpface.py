"""The SMTP face in process: the real GatewaySMTP and Handler on loopback, in front of a
filter that records what reached it, driven by a raw client (bytes as written, no client-side
fixes). The fixtures are in tests/smtp/conftest.py."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import cast

from gateway.filter.orchestrator import Filter, Incoming
from gateway.smtp.admission import Admission, Identity
from gateway.smtp.budget import DataBudget
from gateway.smtp.handler import Handler
from gateway.smtp.reply import SmtpReply
from gateway.smtp.server import GatewaySMTP

ACCEPTED = SmtpReply(250, "2.0.0", "Ok: recorded")


@dataclass
class RecordingFilter:
    received: list[Incoming] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, incoming: Incoming) -> SmtpReply:
        self.received.append(incoming)
        self.arrived.set()
        return ACCEPTED


@dataclass(frozen=True)
class Reply:
    code: int
    text: str  # every line's text, joined by newlines

    def __str__(self) -> str:
        return f"{self.code} {self.text}"


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def reply(self) -> Reply:
        lines = []
        while True:
            line = await asyncio.wait_for(self.reader.readline(), 10)
            if not line:
                raise EOFError("the server closed the connection")
            lines.append(line.rstrip(b"\r\n").decode("utf-8", "replace"))
            if line[3:4] != b"-":
                return Reply(int(lines[0][:3]), "\n".join(entry[4:] for entry in lines))

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def command(self, line: str | bytes) -> Reply:
        data = line.encode("utf-8", "surrogateescape") if isinstance(line, str) else line
        await self.send(data + b"\r\n")
        return await self.reply()


@dataclass
class Face:
    port: int
    filter: RecordingFilter
    clients: list[Client] = field(default_factory=list)

    async def connect(self) -> Client:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        client = Client(reader, writer)
        self.clients.append(client)
        greeting = await client.reply()
        assert greeting.code == 220, greeting
        assert (await client.command("EHLO client.school.test")).code == 250
        return client


StartFace = Callable[..., Awaitable[Face]]


@contextlib.asynccontextmanager
async def faces() -> AsyncIterator[StartFace]:
    """``await start(local_domains=(...), max_message_size=N, tls=context)`` gives a listening
    face (offering STARTTLS with ``tls``; its sessions sharing ``budget`` when given, else
    each its own at the defaults; a session silent for ``command_timeout`` seconds is closed); all
    are closed at the end. ``trusted_networks``
    without loopback makes the test's client untrusted: greeted, as with inbound TLS on, so
    that what it is refused can be seen."""
    servers: list[tuple[asyncio.Server, Face]] = []

    async def start(
        local_domains: Sequence[str] = (),
        max_message_size: int = 100_000,
        tls: ssl.SSLContext | None = None,
        trusted_networks: Sequence[str] = ("127.0.0.0/8",),
        budget: DataBudget | None = None,
        command_timeout: float = 300.0,
    ) -> Face:
        recorder = RecordingFilter()
        handler = Handler(cast(Filter, recorder), 10, local_domains)
        greet_all = tls is not None or "127.0.0.0/8" not in trusted_networks
        admission = Admission(trusted_networks, 10, Identity(tls=greet_all))
        server = await asyncio.get_running_loop().create_server(
            lambda: GatewaySMTP(
                handler,
                admission,
                budget,
                hostname="gateway.school.test",
                data_size_limit=max_message_size,
                enable_SMTPUTF8=True,
                decode_data=False,
                tls_context=tls,
                timeout=command_timeout,
            ),
            "127.0.0.1",
            0,
        )
        face = Face(server.sockets[0].getsockname()[1], recorder)
        servers.append((server, face))
        return face

    yield start
    for server, face in servers:
        for client in face.clients:
            client.writer.close()
        server.close()
        await server.wait_closed()
