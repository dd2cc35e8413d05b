"""The bench's own SMTP load driver: per-message latency, and the loads smtp-source cannot make
(several recipient domains in one message, 200 distinct domains).

A lean asyncio client, so its own overhead is small and the same for every target. Each of
`concurrency` workers opens one connection, says EHLO once, and then sends messages from a
shared queue over it in lock-step (MAIL, RCPT..., DATA; no pipelining), as an MTA with
connection caching does. A message's latency is the time from writing MAIL FROM to reading
the final reply to the end of DATA. With several ports (`ports`: the nodes of one target),
the workers are dealt out over them in turn. A worker whose connection is refused or dropped
(421 at the greeting, for example) reconnects and counts it.

A `probe` stream (optional) runs beside the load: one connection sending its own messages one
after another, `interval` seconds apart, until the load is done; its latencies are reported
apart from the load's, so a scenario can ask whether messages to a warm domain are slowed down
by the load.

    python -m bench.load SPEC.json OUT.json
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import ssl
import sys
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from typing import Any

LINE = b"X" * 76 + b"\r\n"
# The name the client checks the target's certificate against (spec "starttls": the CA file).
TLS_NAME = "gateway.school.test"
TIMEOUT = 120.0
_ids = itertools.count(1)
TLS: ssl.SSLContext | None = None  # from the spec: every session says STARTTLS


def build_message(sender: str, recipients: list[str], subject: str, size: int) -> bytes:
    """Headers like a mail client's, a unique Message-ID, and `size` bytes of body."""
    head = [
        f"From: Teacher <{sender}>",
        f"To: {', '.join(recipients)}",
        f"Subject: {subject}",
        f"Date: {formatdate(usegmt=True)}",
        f"Message-ID: <bench-{os.getpid()}-{next(_ids)}-{time.monotonic_ns()}@school.test>",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=us-ascii",
    ]
    body = LINE * max(1, size // len(LINE))
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def dot_stuff(data: bytes) -> bytes:
    data = data.replace(b"\r\n.", b"\r\n..")
    if data.startswith(b"."):
        data = b"." + data
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


class SmtpError(Exception):
    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"{code} {text}")
        self.code = code
        self.text = text


class Client:
    def __init__(self, port: int, helo: str, tls: ssl.SSLContext | None = None) -> None:
        self.port = port
        self.helo = helo
        self.tls = tls
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def reply(self) -> tuple[int, str]:
        assert self.reader is not None
        lines = []
        while True:
            raw = await self.reader.readline()
            if not raw:
                raise ConnectionError("connection closed by the server")
            lines.append(raw[4:].decode("utf-8", "replace").rstrip())
            if raw[3:4] != b"-":
                return int(raw[:3]), "\n".join(lines)

    async def command(self, line: str, data: bytes | None = None) -> tuple[int, str]:
        assert self.writer is not None
        self.writer.write(data if data is not None else line.encode() + b"\r\n")
        await self.writer.drain()
        return await self.reply()

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(
            "127.0.0.1", self.port, limit=1 << 20
        )
        code, text = await self.reply()
        if code != 220:
            self.close()
            raise SmtpError(code, text)
        await self.ehlo()
        if self.tls is not None:  # RFC 3207: STARTTLS, then EHLO again over TLS
            code, text = await self.command("STARTTLS")
            if code != 220:
                self.close()
                raise SmtpError(code, text)
            assert self.writer is not None
            await self.writer.start_tls(self.tls, server_hostname=TLS_NAME)
            await self.ehlo()

    async def ehlo(self) -> None:
        code, text = await self.command(f"EHLO {self.helo}")
        if code != 250:
            self.close()
            raise SmtpError(code, text)

    async def send(self, sender: str, recipients: list[str], data: bytes) -> tuple[int, str]:
        code, text = await self.command(f"MAIL FROM:<{sender}>")
        if code != 250:
            return code, text
        accepted = 0
        last = (code, text)
        for rcpt in recipients:
            last = await self.command(f"RCPT TO:<{rcpt}>")
            accepted += last[0] == 250
        if not accepted:
            await self.command("RSET")
            return last
        code, text = await self.command("DATA")
        if code != 354:
            return code, text
        return await self.command("", dot_stuff(data))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    async def quit(self) -> None:
        if self.writer is not None:
            with contextlib.suppress(OSError, TimeoutError, ConnectionError):
                await asyncio.wait_for(self.command("QUIT"), 5)
            self.close()


@dataclass
class Results:
    latencies_ms: list[float] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    replies: dict[str, int] = field(default_factory=dict)
    reconnects: int = 0
    errors: list[str] = field(default_factory=list)
    first_start: float = 0.0
    last_end: float = 0.0

    def record(self, tag: str, started: float, ended: float, code: int, text: str) -> None:
        self.latencies_ms.append(round((ended - started) * 1000, 3))
        self.tags.append(tag)
        kind = str(code)
        if code == 250 and "queued" in text:  # the gateway's direct delivery: queued first
            kind = "250 queued"
        elif code == 250:
            kind = (
                "250 relayed+held"
                if "relayed" in text and "held" in text
                else ("250 held" if "held" in text else "250 relayed")
            )
        self.replies[kind] = self.replies.get(kind, 0) + 1
        if code >= 400 and len(self.errors) < 20:
            self.errors.append(f"{code} {text}")
        self.first_start = started if not self.first_start else min(self.first_start, started)
        self.last_end = max(self.last_end, ended)


def client_context(cafile: str | None) -> ssl.SSLContext | None:
    """The client's TLS context: verifying against `cafile` (None: no STARTTLS)."""
    return ssl.create_default_context(cafile=cafile) if cafile else None


async def _session(port: int, helo: str, results: Results) -> Client:
    for attempt in range(200):
        client = Client(port, helo, TLS)
        try:
            await asyncio.wait_for(client.connect(), TIMEOUT)
            return client
        except (OSError, SmtpError, TimeoutError, ConnectionError) as exc:
            results.reconnects += 1
            if len(results.errors) < 20:
                results.errors.append(f"connect: {exc}")
            await asyncio.sleep(min(0.05 * (attempt + 1), 1.0))
    raise RuntimeError(f"could not connect to port {port}")


async def _worker(port: int, queue: asyncio.Queue[dict[str, Any]], results: Results) -> None:
    client: Client | None = None
    try:
        while True:
            try:
                item = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            data = build_message(item["from"], item["to"], item["subject"], item["size"])
            for _ in range(5):
                if client is None:
                    client = await _session(port, "load.school.test", results)
                started = time.monotonic()
                try:
                    code, text = await asyncio.wait_for(
                        client.send(item["from"], item["to"], data), TIMEOUT
                    )
                except (OSError, TimeoutError, ConnectionError) as exc:
                    results.reconnects += 1
                    if len(results.errors) < 20:
                        results.errors.append(f"send: {exc!r}")
                    client.close()
                    client = None
                    continue
                results.record(item.get("tag", ""), started, time.monotonic(), code, text)
                break
    finally:
        if client is not None:
            await client.quit()


async def _probe(port: int, spec: dict[str, Any], done: asyncio.Event, results: Results) -> None:
    client = await _session(port, "probe.school.test", results)
    try:
        while not done.is_set():
            data = build_message(spec["from"], spec["to"], spec["subject"], spec["size"])
            started = time.monotonic()
            code, text = await client.send(spec["from"], spec["to"], data)
            results.record("probe", started, time.monotonic(), code, text)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), spec.get("interval", 0.05))
    finally:
        await client.quit()


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    global TLS
    TLS = client_context(spec.get("starttls"))
    # Several ports (the nodes of one target): the sessions are spread evenly over them.
    ports = spec.get("ports") or [spec["port"]]
    port = ports[0]
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for item in spec["messages"]:
        for _ in range(item.get("repeat", 1)):
            queue.put_nowait(item)
    load, probe = Results(), Results()
    done = asyncio.Event()
    probe_task = None
    if spec.get("probe"):
        probe_task = asyncio.create_task(_probe(port, spec["probe"], done, probe))
        await asyncio.sleep(spec["probe"].get("lead", 0.2))
    began = time.monotonic()
    workers = [
        asyncio.create_task(_worker(ports[i % len(ports)], queue, load))
        for i in range(spec["concurrency"])
    ]
    await asyncio.gather(*workers)
    wall = time.monotonic() - began
    done.set()
    if probe_task is not None:
        await probe_task
    return {
        "wall_s": round(wall, 4),
        "load": load.__dict__,
        "probe": probe.__dict__ if probe_task is not None else None,
        "t0": began,
    }


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    out = asyncio.run(run(spec))
    Path(sys.argv[2]).write_text(json.dumps(out))


if __name__ == "__main__":
    main()
