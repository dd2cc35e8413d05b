"""Bounded memory: `gateway serve` with two processes takes 50 sessions of 20 MB flagged mail at
once (to a secure domain, relayed; every tenth to an insecure one, held), relays or holds every
message exactly once, and its memory stays within what its DATA budget allows ([smtp]
max_concurrent_data, max_concurrent_large, large_message_threshold), far below 50 x 20 MB.

Memory is read from /proc while the load runs: the summed PSS (``smaps_rollup``) of the leader
and its worker, sampled between the load's events, and each process's own high-water mark
(VmHWM), which the kernel keeps and so catches a peak between two samples. The clients act as
an MTA does: a 4xx (the budget's 451 or 421) means "try again later", and they do.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gateway.config.settings import SmtpSettings
from rig.gatewayproc import Gateway
from rig.ports import LOOPBACK

SESSIONS = 50
MESSAGE_SIZE = 20 * 2**20
WORKERS = 2  # the leader and one worker: both take SMTP sessions
# Each process: the interpreter and the gateway's modules, then every message in progress in a
# few copies (read, the relayed copy with its trace headers, the relay's dot-stuffed copy).
BASE_MB = 50
COPIES = 5
CEILING_MB = 400  # whatever the settings, the whole gateway stays below this
RETURNED_WITHIN_MB = 16  # per process: what the load may leave behind once it is over
# A line of 998 characters (RFC 5322 §2.1.1's limit) and its CRLF; never a leading dot.
LINE = (b"0123456789abcdefghijklmnopqrstuvwxyz" * 28)[:998] + b"\r\n"
BODY = LINE * (MESSAGE_SIZE // len(LINE))
SUBJECT = "[SECURE] Referral notes for J"  # flagged by its subject marker
HELD_EVERY = 10  # these go to nosts.test (no MTA-STS): held, encrypted, in the store


def pss_mb(pid: int, field: str = "Pss") -> float:
    """The proportional set size of one process (shared pages split among their users), or
    another field of its ``smaps_rollup`` (``Rss``)."""
    text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    assert match, text
    return int(match.group(1)) / 1024


def hwm_mb(pid: int) -> float:
    match = re.search(r"^VmHWM:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.M)
    assert match
    return int(match.group(1)) / 1024


def settled(sampler: Sampler, below: float) -> float:
    """The gateway's summed PSS once it falls below ``below`` (the allocator gives the pages
    back as the last large message ends), or as it is when it does not."""
    for _ in range(200):
        now = sum(pss_mb(pid) for pid in sampler.processes())
        if now < below:
            break
        time.sleep(0.05)
    return now


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            found += [int(child) for child in (task / "children").read_text().split()]
    return found


@dataclass
class Sampler:
    """The peak of the gateway's summed PSS, sampled whenever the load says something
    happened (a session connected, was admitted, finished) and by a thread in between."""

    leader: int
    peak_mb: float = 0.0
    samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def processes(self) -> list[int]:
        return [self.leader, *children(self.leader)]

    def sample(self) -> None:
        total = 0.0
        for pid in self.processes():
            with contextlib.suppress(OSError):  # a process that ended meanwhile
                total += pss_mb(pid)
        with self._lock:
            self.peak_mb = max(self.peak_mb, total)
            self.samples += 1

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        thread = threading.Thread(target=self._loop, daemon=True)
        thread.start()
        try:
            yield
        finally:
            self._stop.set()
            thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(0.02):
            self.sample()


class Sink:
    """An upstream smarthost that keeps, of each message, only its Message-ID and whether it
    ends with the body the clients sent (so the test holds no 50 x 20 MB itself)."""

    def __init__(self) -> None:
        self.received: list[tuple[str, bool]] = []
        self._changed = threading.Condition()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self.port = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Sink:
        self._thread.start()
        assert self._ready.wait(10), "the sink did not start"
        return self

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def load(self) -> list[tuple[str, bool]]:
        """What arrived of the test's messages (the gateway's notices left out)."""
        return [entry for entry in self.received if entry[0].startswith("memory-")]

    def wait_for(self, count: int, timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: len(self.load()) >= count, timeout)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._session, LOOPBACK, 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        server.close()
        for writer in self._writers:
            writer.close()  # the gateway's pooled connections
        self._loop.run_until_complete(server.wait_closed())

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buffer = bytearray()
        self._writers.add(writer)

        async def fill() -> bool:
            chunk = await reader.read(1 << 20)
            buffer.extend(chunk)
            return bool(chunk)

        async def line() -> bytes | None:
            while (end := buffer.find(b"\r\n")) < 0:
                if not await fill():
                    return None
            text = bytes(buffer[:end])
            del buffer[: end + 2]
            return text

        async def data() -> bytes | None:
            start = 0
            while (end := buffer.find(b"\r\n.\r\n", start)) < 0:
                start = max(0, len(buffer) - 4)
                if not await fill():
                    return None
            text = bytes(buffer[: end + 2])
            del buffer[: end + 5]
            return text

        def reply(text: str) -> None:
            writer.write(text.encode() + b"\r\n")

        reply("220 upstream.test ESMTP")
        with contextlib.suppress(ConnectionError):
            while (command := await line()) is not None:
                verb = command[:4].upper()
                if verb in (b"EHLO", b"HELO"):
                    reply("250-upstream.test\r\n250-8BITMIME\r\n250 SIZE 104857600")
                elif verb == b"DATA":
                    reply("354 go on")
                    message = await data()
                    if message is None:
                        break
                    self._record(message)
                    reply("250 2.0.0 Ok: taken")
                elif verb == b"QUIT":
                    reply("221 bye")
                    break
                else:
                    reply("250 Ok")
                await writer.drain()
        self._writers.discard(writer)
        writer.close()

    def _record(self, message: bytes) -> None:
        found = re.search(rb"^Message-ID: <([^>]+)>", message[:16384], re.MULTILINE)
        with self._changed:
            self.received.append((found.group(1).decode() if found else "", message.endswith(BODY)))
            self._changed.notify_all()


@pytest.fixture
def sink() -> Iterator[Sink]:
    server = Sink().start()
    try:
        yield server
    finally:
        server.close()


@dataclass
class Outcome:
    replies: collections.Counter[str] = field(default_factory=collections.Counter)
    retries: int = 0


def recipient(index: int) -> str:
    return "worker@nosts.test" if index % HELD_EVERY == 0 else "colleague@secure.test"


async def send_one(port: int, index: int, outcome: Outcome, sampler: Sampler) -> None:
    """One message as an MTA sends it: again after a 4xx or a connection closed mid-way."""
    to = recipient(index)
    header = (
        f"From: teacher@school.test\r\nTo: {to}\r\nSubject: {SUBJECT}\r\n"
        f"Message-ID: <memory-{index}@school.test>\r\n\r\n"
    ).encode()
    while not await attempt(port, to, header, outcome, sampler):
        outcome.retries += 1


async def attempt(port: int, to: str, header: bytes, outcome: Outcome, sampler: Sampler) -> bool:
    """One session: True when the message was taken (250)."""
    reader, writer = await asyncio.open_connection(LOOPBACK, port)
    sampler.sample()

    async def command(text: str) -> str:
        if text:
            writer.write(text.encode() + b"\r\n")
        while True:
            reply = (await reader.readline()).decode()
            if reply[3:4] != "-":
                return reply

    try:
        await command("")  # the greeting
        await command("EHLO client.school.test")
        await command("MAIL FROM:<teacher@school.test>")
        await command(f"RCPT TO:<{to}>")
        reply = await command("DATA")
        if reply.startswith("354"):
            sampler.sample()
            writer.write(header)
            writer.write(BODY)
            writer.write(b".\r\n")
            await writer.drain()
            reply = await command("")
        sampler.sample()
        outcome.replies[reply[:3] or "closed"] += 1
        if reply.startswith("250"):
            await command("QUIT")
            return True
    except ConnectionError:
        outcome.replies["reset"] += 1
    finally:
        writer.close()
    return False


def allowed_mb(smtp: SmtpSettings) -> float:
    """What the settings allow: per process, its base, plus every small message in progress at
    the threshold and every large one at the size sent, a few copies each."""
    small = smtp.max_concurrent_data * smtp.large_message_threshold / 2**20
    large = smtp.max_concurrent_large * MESSAGE_SIZE / 2**20
    return WORKERS * (BASE_MB + COPIES * (small + large))


def test_fifty_sessions_of_20_mb_stay_within_the_data_budget(
    sink: Sink, serve: Callable[..., Gateway]
) -> None:
    # The sink first: it is closed after the gateway, which says QUIT on its connections.
    gw = serve(smtp={"workers": WORKERS}, relay={"port": sink.port})
    assert gw.proc.pid is not None
    sampler = Sampler(gw.proc.pid)
    assert len(sampler.processes()) == WORKERS, "the worker is not running"
    before = sum(pss_mb(pid) for pid in sampler.processes())
    outcome = Outcome()
    held = [i for i in range(SESSIONS) if recipient(i).endswith("@nosts.test")]
    relayed = [i for i in range(SESSIONS) if i not in held]

    async def load() -> None:
        await asyncio.gather(
            *(send_one(gw.proc.port, i, outcome, sampler) for i in range(SESSIONS))
        )

    with sampler.running():
        asyncio.run(load())
        assert sink.wait_for(len(relayed), 60), f"{len(sink.load())} of {len(relayed)} relayed"
    # Each process's VmHWM counts the pages the two share in full: less them, it is the
    # kernel's own peak, on the same footing as the summed PSS.
    processes = sampler.processes()
    shared = sum(pss_mb(pid, "Rss") - pss_mb(pid) for pid in processes)
    hwm = sum(hwm_mb(pid) for pid in processes) - shared
    after = settled(sampler, before + WORKERS * RETURNED_WITHIN_MB)

    ids = collections.Counter(message_id for message_id, _ in sink.load())
    assert ids == collections.Counter(f"memory-{i}@school.test" for i in relayed)
    assert all(whole for _, whole in sink.load()), "a relayed copy lost part of its body"
    holds = collections.Counter(hold.message_id for hold in gw.holds())
    assert holds == collections.Counter(f"<memory-{i}@school.test>" for i in held)
    assert outcome.replies["250"] == SESSIONS, outcome
    bound = min(allowed_mb(SmtpSettings()), CEILING_MB)  # the defaults: none is set
    print(
        f"peak PSS {sampler.peak_mb:.0f} MB over {sampler.samples} samples, VmHWM less shared "
        f"{hwm:.0f} MB, bound {bound:.0f} MB; PSS before {before:.0f} MB, after {after:.0f} "
        f"MB; replies {dict(outcome.replies)}"
    )
    assert sampler.peak_mb < bound, f"peak PSS {sampler.peak_mb:.0f} MB, bound {bound:.0f} MB"
    assert hwm < bound, f"VmHWM summed less shared {hwm:.0f} MB, bound {bound:.0f} MB"
    # The memory goes back once the messages are done (gateway.runtime.allocator).
    assert after < before + WORKERS * RETURNED_WITHIN_MB, f"{before:.0f} MB, then {after:.0f} MB"
