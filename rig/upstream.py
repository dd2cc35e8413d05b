"""A recording SMTP server on loopback: the upstream smarthost `gateway serve` relays to.

Written from scratch (not aiosmtpd, which refuses DSN parameters with 555): it advertises
8BITMIME, SMTPUTF8, DSN and ENHANCEDSTATUSCODES, records the exact MAIL and RCPT command lines,
and can be told to fail:

* ``fail_mail = 451``: refuse MAIL with that code;
* ``fail_rcpt = {"bob@secure.test": 550}``: refuse RCPT for those addresses (any case);
* ``fail_data = 554``: refuse the message at the end of DATA;
* ``data_delay = 30.0``: wait that long before answering the end of DATA. A client that leaves
  meanwhile never saw the 250, so the transaction is aborted and NOT recorded, like a real MTA
  that has not yet committed the message (``aborted`` counts these);
* ``stop()``: not listening at all (connection refused) until ``start()`` again, same port.

TLS: given ``tls`` (a server ``ssl.SSLContext``) it offers STARTTLS (RFC 3207), or speaks TLS
from the first byte with ``implicit = True`` (RFC 8314). ``offer_starttls = False`` hides the
offer (a downgrade on the path looks like this); ``fail_starttls = 454`` refuses the command;
``requiretls = True`` advertises REQUIRETLS (RFC 8689 §4: only once TLS is up). Input
pipelined after STARTTLS is discarded, as RFC 3207 §4.2 requires. Every recorded message says
whether and how TLS carried it (``tls_version``, ``cipher``). ``host`` binds another loopback
address (127.0.0.x), so several servers can stand in for a domain's MX hosts on one port;
``name`` is the name in the greeting.

PIPELINING (RFC 2920) is advertised unless ``pipelining = False``; ``chunks`` keeps every read
of commands as it arrived (a pipelined group is one chunk: "MAIL ... RCPT ... DATA"), and
``drop_at = "RCPT"`` closes the connection, unanswered, when that command comes (a server that
goes away in the middle of a group).

``lenient_data_end = True`` makes it end DATA at a lone dot between *any* line endings (bare LF
or bare CR too), like the receivers that SMTP smuggling exploits, so a gateway that passes bare
line endings through would show up as a second, smuggled message.

The server runs on its own event loop in a daemon thread; the test thread reads what it
recorded through ``messages`` and ``wait_for``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from rig.ports import LOOPBACK

T = TypeVar("T")

HOSTNAME = "upstream.test"
EXTENSIONS = ("8BITMIME", "SMTPUTF8", "DSN", "ENHANCEDSTATUSCODES", "SIZE 104857600")

_MAIL = re.compile(r"MAIL\s+FROM:\s*<([^>]*)>\s*(.*)\Z", re.IGNORECASE | re.DOTALL)
_RCPT = re.compile(r"RCPT\s+TO:\s*<([^>]*)>\s*(.*)\Z", re.IGNORECASE | re.DOTALL)
_END_STRICT = re.compile(rb"(\r\n)\.\r\n")
_END_LENIENT = re.compile(rb"(\r\n|\n|\r)\.(?:\r\n|\n|\r)")
_STUFFED_STRICT = re.compile(rb"(\A|\r\n)\.")
_STUFFED_LENIENT = re.compile(rb"(\A|\r\n|\n|\r)\.")
_LINE = re.compile(rb"\r?\n")


@dataclass(frozen=True)
class Message:
    """One transaction the upstream accepted (its 250 was sent to a connected client)."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    mail_options: tuple[str, ...]
    rcpt_options: tuple[tuple[str, ...], ...]  # per recipient, in RCPT order
    data: bytes  # de-stuffed, up to and including the line ending before the final dot
    mail_line: str  # the MAIL command exactly as received
    rcpt_lines: tuple[str, ...]  # the accepted RCPT commands exactly as received
    helo: str
    tls_version: str = ""  # "TLSv1.3"; empty when the message came in plaintext
    cipher: str = ""


@dataclass
class _Transaction:
    mail_from: str | None = None
    mail_options: tuple[str, ...] = ()
    mail_line: str = ""
    rcpt_tos: list[str] = field(default_factory=list)
    rcpt_options: list[tuple[str, ...]] = field(default_factory=list)
    rcpt_lines: list[str] = field(default_factory=list)


class _Connection:
    """A byte buffer over a stream, so commands, DATA and pipelined input share one reader."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        chunks: list[bytes] | None = None,
    ) -> None:
        self.reader = reader
        self.chunks = chunks
        self.writer = writer
        self.buffer = b""
        self.eof = False
        self.tls_version = ""
        self.cipher = ""

    async def start_tls(self, context: ssl.SSLContext) -> None:
        """Upgrade the connection; whatever the client pipelined before is thrown away."""
        self.buffer = b""
        await self.writer.start_tls(context)
        self.note_tls()

    def note_tls(self) -> None:
        tls = self.writer.get_extra_info("ssl_object")
        if tls is not None:
            self.tls_version = tls.version() or ""
            self.cipher = (tls.cipher() or ("",))[0]

    async def _fill(self) -> bool:
        if self.eof:
            return False
        try:
            chunk = await self.reader.read(65536)
        except (ConnectionError, OSError):
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        if self.chunks is not None:
            self.chunks.append(chunk)
        self.buffer += chunk
        return True

    async def readline(self) -> bytes | None:
        """The next command line without its line ending (LF or CRLF); None at EOF."""
        while True:
            match = _LINE.search(self.buffer)
            if match is not None:
                line, self.buffer = self.buffer[: match.start()], self.buffer[match.end() :]
                return line
            if not await self._fill():
                return None

    async def read_data(self, end: re.Pattern[bytes]) -> bytes | None:
        """Raw (still dot-stuffed) DATA up to the end marker; None if the client left."""
        while True:
            text = b"\r\n" + self.buffer  # so a lone dot on the very first line ends it too
            match = end.search(text)
            if match is not None:
                self.buffer = text[match.end() :]
                return text[2 : match.start() + len(match.group(1))]
            if not await self._fill():
                return None

    async def still_connected(self, seconds: float) -> bool:
        """Wait `seconds`; False as soon as the client closes the connection."""
        deadline = time.monotonic() + seconds
        while not self.eof:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return True
            task = asyncio.ensure_future(self._fill())
            done, _ = await asyncio.wait({task}, timeout=remaining)
            if not done:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                return not self.eof
        return False

    async def reply(self, *lines: str) -> None:
        text = "".join(
            f"{line[:3]}{'-' if i < len(lines) - 1 else ' '}{line[4:]}\r\n"
            for i, line in enumerate(lines)
        )
        self.writer.write(text.encode("utf-8"))
        await self.writer.drain()


def _reply(code: int, text: str) -> str:
    return f"{code} {code // 100}.0.0 {text}"


class Upstream:
    """The recording server; see the module docstring. ``start()`` before use, ``close()``
    after; ``port`` stays the same across ``stop()``/``start()``."""

    def __init__(
        self,
        port: int = 0,
        host: str = LOOPBACK,
        tls: ssl.SSLContext | None = None,
        *,
        implicit: bool = False,
        name: str = HOSTNAME,
    ) -> None:
        self.host = host
        self.port = port
        self.name = name
        self.tls = tls
        self.implicit = implicit
        self.offer_starttls = True
        self.fail_starttls: int | None = None
        self.requiretls = False
        self.pipelining = True
        self.drop_at: str | None = None
        self.chunks: list[bytes] = []  # what the clients sent, read by read (DATA included)
        self.fail_mail: int | None = None
        self.fail_rcpt: dict[str, int] = {}
        self.fail_data: int | None = None
        self.data_delay = 0.0
        self.lenient_data_end = False
        self.aborted = 0
        self.connections = 0
        # Set when a whole message is in and the upstream is about to (delay its) reply.
        self.data_received = threading.Event()
        self.transcript: list[str] = []  # every command line, from every client
        self._messages: list[Message] = []
        self._data_for: set[str] = set()  # recipients of every transaction whose data came in
        self._changed = threading.Condition()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="upstream-smtp", daemon=True
        )
        self._thread.start()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._sessions: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}

    # ---- control, from the test thread

    def _call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    @property
    def listening(self) -> bool:
        return self._server is not None

    def start(self) -> Upstream:
        self._call(self._start())
        return self

    def stop(self) -> None:
        """Stop listening and drop every connection: the upstream is down."""
        self._call(self._stop())

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def reset(self) -> None:
        """Forget the injected failures (not what was recorded)."""
        self.fail_mail = None
        self.fail_rcpt = {}
        self.fail_data = None
        self.data_delay = 0.0
        self.offer_starttls = True
        self.fail_starttls = None
        self.requiretls = False
        self.pipelining = True
        self.drop_at = None
        self.data_received.clear()

    def clear(self) -> None:
        """Forget what was recorded (messages, transcript, counters)."""
        with self._changed:
            self._messages.clear()
            self._data_for.clear()
            self.transcript.clear()
            self.chunks.clear()
            self.aborted = 0
            self.connections = 0

    @property
    def messages(self) -> list[Message]:
        with self._changed:
            return list(self._messages)

    def wait_for(
        self,
        count: int,
        timeout: float = 10.0,
        where: Callable[[Message], bool] | None = None,
    ) -> list[Message]:
        """Wait until at least `count` recorded messages match `where` (default: any); return
        the matching ones (fewer if the wait timed out)."""

        def matching() -> list[Message]:
            return [m for m in self._messages if where is None or where(m)]

        with self._changed:
            self._changed.wait_for(lambda: len(matching()) >= count, timeout)
            return matching()

    def wait_data(self, recipient: str, timeout: float = 10.0) -> bool:
        """Wait until a transaction to `recipient` has sent all its data and waits for the
        reply (recorded or not)."""
        with self._changed:
            return self._changed.wait_for(lambda: recipient in self._data_for, timeout)

    def wait_aborted(self, count: int = 1, timeout: float = 10.0) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self.aborted >= count, timeout)

    # ---- the server, on its own loop

    async def _start(self) -> None:
        if self._server is not None:
            return
        self._server = await asyncio.start_server(
            self._handle,
            self.host,
            self.port,
            reuse_address=True,
            ssl=self.tls if self.implicit else None,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for writer in list(self._writers):
            writer.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 5)
        # A client that keeps its connection open between messages (a connection cache) is
        # still in a session here: let each session see its connection closed and end.
        # A TLS close waits for the client's close_notify: one that does not answer soon has
        # its connection cut.
        sessions = dict(self._sessions)
        if sessions:
            _, pending = await asyncio.wait(sessions, timeout=2)
            for session in pending:
                sessions[session].transport.abort()
            if pending:
                _, pending = await asyncio.wait(pending, timeout=2)
            for session in pending:
                session.cancel()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        session = asyncio.current_task()
        if session is not None:
            self._sessions[session] = writer
        self.connections += 1
        try:
            conn = _Connection(reader, writer, self.chunks)
            conn.note_tls()
            await self._session(conn)
        except (ConnectionError, OSError, ssl.SSLError):
            pass
        finally:
            self._writers.discard(writer)
            if session is not None:
                self._sessions.pop(session, None)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def _session(self, conn: _Connection) -> None:
        await conn.reply(f"220 {self.name} ESMTP recording upstream")
        helo = ""
        tx = _Transaction()
        while True:
            raw = await conn.readline()
            if raw is None:
                return
            line = raw.decode("utf-8", "surrogateescape")
            self.transcript.append(line)
            verb = line.split(" ", 1)[0].upper()
            if verb == self.drop_at:
                return
            if verb == "EHLO":
                helo, tx = line[5:].strip(), _Transaction()
                await conn.reply(f"250 {self.name}", *(f"250 {e}" for e in self._extensions(conn)))
            elif verb == "HELO":
                helo, tx = line[5:].strip(), _Transaction()
                await conn.reply(f"250 {self.name}")
            elif verb == "STARTTLS" and self._starttls_offered(conn):
                if self.fail_starttls is not None:
                    await conn.reply(_reply(self.fail_starttls, "TLS not available now"))
                    continue
                await conn.reply("220 2.0.0 Ready to start TLS")
                assert self.tls is not None
                await conn.start_tls(self.tls)
                helo, tx = "", _Transaction()  # RFC 3207 §4.2: forget what came before
            elif verb == "MAIL":
                await conn.reply(self._mail(line, helo, tx))
            elif verb == "RCPT":
                await conn.reply(self._rcpt(line, tx))
            elif verb == "DATA":
                if not tx.rcpt_tos:
                    await conn.reply("503 5.5.1 No valid recipients")
                    continue
                await conn.reply("354 End data with <CR><LF>.<CR><LF>")
                if not await self._data(conn, helo, tx):
                    return
                tx = _Transaction()
            elif verb == "RSET":
                tx = _Transaction()
                await conn.reply("250 2.0.0 Reset")
            elif verb == "NOOP":
                await conn.reply("250 2.0.0 Ok")
            elif verb == "QUIT":
                await conn.reply("221 2.0.0 Bye")
                return
            else:
                await conn.reply("502 5.5.2 Command not recognised")

    def _starttls_offered(self, conn: _Connection) -> bool:
        return self.tls is not None and self.offer_starttls and not conn.tls_version

    def _extensions(self, conn: _Connection) -> tuple[str, ...]:
        extensions = EXTENSIONS
        if self.pipelining:
            extensions += ("PIPELINING",)
        if self._starttls_offered(conn):
            extensions += ("STARTTLS",)
        if self.requiretls and conn.tls_version:
            extensions += ("REQUIRETLS",)
        return extensions

    def _mail(self, line: str, helo: str, tx: _Transaction) -> str:
        if not helo:
            return "503 5.5.1 EHLO first"
        if tx.mail_from is not None:
            return "503 5.5.1 Nested MAIL command"
        match = _MAIL.match(line)
        if match is None:
            return "501 5.5.4 Syntax: MAIL FROM:<address>"
        if self.fail_mail is not None:
            return _reply(self.fail_mail, "Sender refused by the test upstream")
        tx.mail_from = match.group(1)
        tx.mail_options = tuple(match.group(2).split())
        tx.mail_line = line
        return "250 2.1.0 Ok"

    def _rcpt(self, line: str, tx: _Transaction) -> str:
        if tx.mail_from is None:
            return "503 5.5.1 MAIL first"
        match = _RCPT.match(line)
        if match is None:
            return "501 5.5.4 Syntax: RCPT TO:<address>"
        address = match.group(1)
        refusals = {a.lower(): code for a, code in self.fail_rcpt.items()}
        code = refusals.get(address.lower())
        if code is not None:
            return _reply(code, f"Recipient <{address}> refused by the test upstream")
        tx.rcpt_tos.append(address)
        tx.rcpt_options.append(tuple(match.group(2).split()))
        tx.rcpt_lines.append(line)
        return "250 2.1.5 Ok"

    async def _data(self, conn: _Connection, helo: str, tx: _Transaction) -> bool:
        """Read and answer one message; False when the client has gone."""
        end = _END_LENIENT if self.lenient_data_end else _END_STRICT
        stuffed = _STUFFED_LENIENT if self.lenient_data_end else _STUFFED_STRICT
        raw = await conn.read_data(end)
        if raw is None:
            return False
        data = stuffed.sub(rb"\1", raw)
        with self._changed:
            self._data_for.update(tx.rcpt_tos)
            self._changed.notify_all()
        self.data_received.set()
        if self.data_delay and not await conn.still_connected(self.data_delay):
            with self._changed:
                self.aborted += 1
                self._changed.notify_all()
            return False
        if self.fail_data is not None:
            await conn.reply(_reply(self.fail_data, "Message refused by the test upstream"))
            return True
        assert tx.mail_from is not None
        message = Message(
            mail_from=tx.mail_from,
            rcpt_tos=tuple(tx.rcpt_tos),
            mail_options=tx.mail_options,
            rcpt_options=tuple(tx.rcpt_options),
            data=data,
            mail_line=tx.mail_line,
            rcpt_lines=tuple(tx.rcpt_lines),
            helo=helo,
            tls_version=conn.tls_version,
            cipher=conn.cipher,
        )
        # Committed, then answered: the 250 goes to a client that was there a moment ago.
        with self._changed:
            self._messages.append(message)
            self._changed.notify_all()
        await conn.reply(f"250 2.0.0 Ok: queued as {len(self._messages)}")
        return True
