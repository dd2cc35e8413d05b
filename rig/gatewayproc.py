"""`gateway serve` as a child process, and the clients the end-to-end tests drive it with.

:class:`GatewayProcess` starts the console script, waits for its "listening" log line (failing
with its output if it exits first), keeps stdout (one JSON object a line) and stderr of every
run, and stops it with SIGTERM, or SIGKILL for the crash tests. :class:`Gateway` bundles a
process with its config, data_dir and upstream, reads the hold store as a reviewer would, and
tells relayed mail from the gateway's own notices (sent from postmaster@gateway.test through
the same upstream).

The clients: :meth:`Gateway.smtp` (smtplib), :func:`raw_session` (bytes over a socket, for what
smtplib would tidy up), :func:`swaks` (the real command-line client).
"""

from __future__ import annotations

import contextlib
import ctypes
import email
import email.message
import email.policy
import json
import re
import signal
import smtplib
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rig.cli import clean_env, gateway_script
from rig.ports import LOOPBACK, free_port
from rig.rig import Rig
from rig.sharedstore import SharedStore, json_column, migrate_schema, node_connections, query
from rig.upstream import Message, Upstream

START_TIMEOUT = 15.0
STOP_TIMEOUT = 15.0
CLIENT_TIMEOUT = 30.0
HOSTNAME = "gateway.test"
LOCAL_DOMAIN = "school.test"
# The envelope sender of the gateway's own notices (held, released, ...): [notify] from.
NOTICE_SENDER = f"postmaster@{HOSTNAME}"

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class GatewayError(AssertionError):
    """The gateway did not start or stop as it should; carries its output."""


class GatewayProcess:
    """`gateway serve --config CONFIG`, listening on 127.0.0.1:`port`."""

    def __init__(self, config: Path, port: int, logdir: Path) -> None:
        self.config = config
        self.port = port
        self.logdir = logdir
        self.runs = 0
        # True when the last run ended by SIGKILL (kill(), or a stop() that timed out).
        self.forced = False
        self._popen: subprocess.Popen[bytes] | None = None
        self._outputs: list[tuple[Path, Path]] = []

    @property
    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen else None

    def start(self, timeout: float = START_TIMEOUT) -> None:
        assert not self.running, "already running"
        self.runs += 1
        self.forced = False
        out = self.logdir / f"gateway-{self.runs}.stdout"
        err = self.logdir / f"gateway-{self.runs}.stderr"
        self._outputs.append((out, err))
        listening_before = len(self.events("listening"))
        with out.open("wb") as stdout, err.open("wb") as stderr:
            self._popen = subprocess.Popen(
                [str(gateway_script()), "serve", "--config", str(self.config)],
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                env=clean_env(),
                preexec_fn=_die_with_parent,  # only a prctl; safe before exec
            )
        deadline = time.monotonic() + timeout
        # "listening" is logged once the socket is bound and accepting.
        while len(self.events("listening")) <= listening_before:
            code = self._popen.poll()
            if code is not None:
                raise GatewayError(f"gateway serve exited with status {code}\n{self.output()}")
            if time.monotonic() > deadline:
                raise GatewayError(
                    f"gateway serve not listening after {timeout} s\n{self.output()}"
                )
            time.sleep(0.02)

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM, then wait; the exit status (killed with SIGKILL if it does not stop)."""
        if self._popen is None:
            return 0
        if self._popen.poll() is None:
            self._popen.send_signal(signal.SIGTERM)
            try:
                self._popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.forced = True
                self._popen.kill()
                self._popen.wait(timeout)
                raise GatewayError(
                    f"gateway serve ignored SIGTERM for {timeout} s\n{self.output()}"
                ) from None
        return self._popen.returncode

    def wait_exit(self, timeout: float = STOP_TIMEOUT) -> int:
        """Wait for a process already told to stop; its exit status."""
        assert self._popen is not None
        return self._popen.wait(timeout)

    def kill(self) -> None:
        """kill -9: no clean-up, no last log line."""
        assert self._popen is not None
        self.forced = True
        self._popen.send_signal(signal.SIGKILL)
        self._popen.wait(STOP_TIMEOUT)

    def stdout(self) -> str:
        return "".join(_read(out) for out, _ in self._outputs)

    def stderr(self) -> str:
        return "".join(_read(err) for _, err in self._outputs)

    def output(self) -> str:
        return f"--- stdout\n{self.stdout()}--- stderr\n{self.stderr()}"

    def log(self) -> list[dict[str, Any]]:
        """Every JSON log line of every run, in order (other lines are skipped)."""
        entries = []
        for line in self.stdout().splitlines():
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if isinstance(entry, dict):
                    entries.append(entry)
        return entries

    def events(self, name: str, **fields: object) -> list[dict[str, Any]]:
        """Log entries whose event is `name` and whose fields equal `fields`."""
        return [
            e
            for e in self.log()
            if e.get("event") == name and all(e.get(k) == v for k, v in fields.items())
        ]

    def wait_event(
        self, name: str, timeout: float = 10.0, count: int = 1, **fields: object
    ) -> list[dict[str, Any]]:
        """The log lines ``name`` (with these ``fields``), once there are ``count`` of them."""
        deadline = time.monotonic() + timeout
        while len(found := self.events(name, **fields)) < count:
            if time.monotonic() > deadline:
                raise GatewayError(f"no {name!r} log line after {timeout} s\n{self.output()}")
            time.sleep(0.02)
        return found


def is_notice(message: Message) -> bool:
    return message.mail_from == NOTICE_SENDER


def readable(message: Message) -> str:
    """A relayed message or notice as a person reads it: header fields, then the text body
    decoded (quoted-printable soft breaks would otherwise split words)."""
    parsed = email.message_from_bytes(message.data, policy=email.policy.default)
    assert isinstance(parsed, email.message.EmailMessage)
    head = "".join(f"{name}: {value}\n" for name, value in parsed.items())
    body = parsed.get_body(("plain",))
    text = body.get_content() if body is not None else ""
    return f"{head}\n{text}"


def message_id(data: bytes) -> str:
    """The Message-ID field of a message made by `message()`."""
    return data.split(b"Message-ID: ", 1)[1].split(b"\r\n", 1)[0].decode()


def _relayed_copy(relayed: Message, of: bytes | None) -> bool:
    if is_notice(relayed):
        return False
    return of is None or f"Message-ID: {message_id(of)}\r\n".encode() in relayed.data


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


@dataclass(frozen=True)
class HoldRow:
    """One row of the `holds` table, JSON columns decoded."""

    id: str
    key: str
    status: str
    sender: str
    recipients: list[dict[str, Any]]
    mail_options: list[str]
    size: int
    message_id: str
    findings: list[str]
    facts: dict[str, Any]

    @property
    def addresses(self) -> list[str]:
        return [r["address"] for r in self.recipients]

    def reasons(self, address: str) -> list[str]:
        for r in self.recipients:
            if r["address"] == address:
                return list(r["reasons"])
        raise KeyError(address)


@dataclass(frozen=True)
class Reply:
    code: int
    text: str

    def __str__(self) -> str:
        return f"{self.code} {self.text}"


class Gateway:
    """A running `gateway serve` with its config, data_dir and upstream."""

    def __init__(
        self,
        proc: GatewayProcess,
        upstream: Upstream,
        data_dir: Path,
        store: SharedStore | None = None,
    ) -> None:
        self.proc = proc
        self.upstream = upstream
        self.data_dir = data_dir
        self.store = store  # None: the embedded store in data_dir

    @property
    def port(self) -> int:
        return self.proc.port

    @property
    def address(self) -> tuple[str, int]:
        return (LOOPBACK, self.port)

    def restart(self) -> None:
        self.proc.stop()
        self.proc.start()

    # ---- what reached the upstream: relayed mail, and the gateway's own notices

    def relayed(self, of: bytes | None = None) -> list[Message]:
        """Messages relayed for clients (the gateway's notices left out); with `of`, only
        copies of that message (by its Message-ID)."""
        return [m for m in self.upstream.messages if _relayed_copy(m, of)]

    def wait_relayed(
        self, count: int, timeout: float = 10.0, of: bytes | None = None
    ) -> list[Message]:
        return self.upstream.wait_for(count, timeout, where=lambda m: _relayed_copy(m, of))

    def notices(self) -> list[Message]:
        return [m for m in self.upstream.messages if is_notice(m)]

    def wait_notices(self, count: int, timeout: float = 10.0) -> list[Message]:
        """Wait for `count` notices; then give a second notice the time to show up too (the
        outbox sends right after a hold), so `== count` checks mean "exactly"."""
        found = self.upstream.wait_for(count, timeout, where=is_notice)
        if len(found) >= count:
            time.sleep(0.3)
            found = self.notices()
        return found

    # ---- the hold store, as a reviewer sees it

    @property
    def held_db(self) -> Path:
        return self.data_dir / "held.sqlite3"

    def holds(self, of: bytes | None = None) -> list[HoldRow]:
        """Every row of `holds`; with `of`, only the holds of that message (by Message-ID)."""
        rows = self.query(
            "SELECT id, key, status, sender, recipients, mail_options, size, message_id,"
            " findings, facts FROM holds ORDER BY created_at"
        )
        return [
            HoldRow(
                id=r[0],
                key=r[1],
                status=r[2],
                sender=r[3],
                recipients=json_column(r[4]),
                mail_options=json_column(r[5]),
                size=r[6],
                message_id=r[7],
                findings=json_column(r[8]),
                facts=json_column(r[9]),
            )
            for r in rows
            if of is None or r[7] == message_id(of)
        ]

    def query(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """Rows of the hold store, either backend (``?`` placeholders)."""
        return query(self.held_db, self.store, sql, params)

    def held_bodies(self) -> dict[str, bytes]:
        """The sealed bodies the store keeps, by hold id (either backend)."""
        return {
            row[0]: bytes(row[1]) for row in self.query("SELECT hold_id, body FROM hold_bodies")
        }

    # ---- clients

    @contextlib.contextmanager
    def smtp(
        self, source: str | None = None, helo: str = "client.school.test"
    ) -> Iterator[smtplib.SMTP]:
        """An smtplib session after EHLO; `source` binds the client to another 127.x."""
        client = smtplib.SMTP(
            LOOPBACK,
            self.port,
            local_hostname=helo,
            timeout=CLIENT_TIMEOUT,
            source_address=(source, 0) if source else None,
        )
        try:
            client.ehlo()
            yield client
        finally:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                client.quit()
            client.close()

    def send(
        self,
        sender: str,
        recipients: Sequence[str],
        message: bytes,
        mail_options: Sequence[str] = (),
        rcpt_options: Sequence[str] = (),
    ) -> Reply:
        """One transaction with smtplib, step by step; the reply to DATA (or to the first
        command that failed: every recipient refused gives the last RCPT reply)."""
        with self.smtp() as client:
            return transact(client, sender, recipients, message, mail_options, rcpt_options)


def transact(
    client: smtplib.SMTP,
    sender: str,
    recipients: Sequence[str],
    message: bytes,
    mail_options: Sequence[str] = (),
    rcpt_options: Sequence[str] = (),
) -> Reply:
    code, text = client.mail(sender, list(mail_options))
    if code != 250:
        client.rset()
        return Reply(code, text.decode("utf-8", "replace"))
    accepted = 0
    last = Reply(code, "")
    for recipient in recipients:
        code, text = client.rcpt(recipient, list(rcpt_options))
        last = Reply(code, text.decode("utf-8", "replace"))
        accepted += code == 250
    if not accepted:
        client.rset()
        return last
    code, text = client.data(message)
    return Reply(code, text.decode("utf-8", "replace"))


def start_gateway(
    rig: Rig,
    workdir: Path,
    upstream: Upstream,
    data_dir: Path | None = None,
    *,
    store: SharedStore | None = None,
    **overrides: Mapping[str, object],
) -> Gateway:
    """Write a config for the rig (smtp listen on a free port, relay to `upstream`, local
    domain school.test, store in `data_dir`, or in `store`'s database, migrated first; each
    other keyword updates one table), and start it."""
    workdir.mkdir(parents=True, exist_ok=True)
    data_dir = data_dir or workdir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    sections: dict[str, dict[str, object]] = {
        "smtp": {"listen": f"{LOOPBACK}:{port}", "hostname": HOSTNAME},
        "relay": {"host": LOOPBACK, "port": upstream.port},
        "policy": {"local_domains": [LOCAL_DOMAIN]},
        "store": {"data_dir": data_dir},
    }
    if store is not None:
        migrate_schema(store.dsn)
        for name, keys in store.sections().items():
            sections.setdefault(name, {}).update(keys)
    for section, table in overrides.items():
        sections.setdefault(section, {}).update(table)
    config = rig.write_config(workdir / "gateway.toml", **sections)
    proc = GatewayProcess(config, port, workdir)
    proc.start()
    if store is not None and not node_connections(store):
        # A node that ignored [store] backend would pass many a test on its own files.
        proc.kill()
        raise GatewayError(f"gateway serve is not using its database\n{proc.output()}")
    return Gateway(proc, upstream, data_dir, store)


# ---- a raw client, for bytes smtplib would not send


class RawSession:
    """SMTP over a plain socket: send exact bytes, read whole (multi-line) replies."""

    def __init__(self, address: tuple[str, int], source: str | None = None) -> None:
        self.sock = socket.create_connection(
            address, timeout=CLIENT_TIMEOUT, source_address=(source, 0) if source else None
        )
        self.buffer = b""

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(self) -> Reply:
        """The next complete reply; EOFError if the server closes the connection first."""
        lines = []
        while True:
            while b"\r\n" not in self.buffer:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise EOFError("the server closed the connection")
                self.buffer += chunk
            line, self.buffer = self.buffer.split(b"\r\n", 1)
            lines.append(line.decode("utf-8", "replace"))
            if len(line) < 4 or line[3:4] != b"-":
                return Reply(int(lines[-1][:3]), "\n".join(x[4:] for x in lines))

    def command(self, line: bytes | str) -> Reply:
        """Send one command (a str gets CRLF; bytes go as they are) and read the reply."""
        self.send(line.encode() + b"\r\n" if isinstance(line, str) else line)
        return self.reply()

    def expect(self, line: bytes | str, code: int) -> Reply:
        reply = self.command(line)
        assert reply.code == code, f"{line!r} got {reply}"
        return reply

    def replies_until_close(self) -> list[Reply]:
        found = []
        with contextlib.suppress(EOFError, ConnectionError):
            while True:
                found.append(self.reply())
        return found


@contextlib.contextmanager
def raw_session(
    address: tuple[str, int], source: str | None = None
) -> Iterator[tuple[RawSession, Reply]]:
    """A raw session and the server's greeting."""
    session = RawSession(address, source)
    try:
        yield session, session.reply()
    finally:
        session.close()


# ---- swaks, the command-line SMTP client


_SWAKS_REPLY = re.compile(r"\s*<(?:-|\*\*)\s+(\d{3})([ -]?)(.*)\Z")


@dataclass(frozen=True)
class SwaksResult:
    returncode: int
    transcript: str

    def replies(self) -> list[Reply]:
        """Every server reply in the transcript (``<-`` ok, ``<**`` error), multi-line
        replies joined."""
        found: list[Reply] = []
        pending: list[str] = []
        for line in self.transcript.splitlines():
            match = _SWAKS_REPLY.match(line)
            if match is None:
                continue
            pending.append(match.group(3))
            if match.group(2) != "-":
                found.append(Reply(int(match.group(1)), "\n".join(pending)))
                pending = []
        return found

    @property
    def final(self) -> Reply:
        """The last reply before QUIT's 221 (or the last reply at all)."""
        replies = [r for r in self.replies() if r.code != 221]
        assert replies, self.transcript
        return replies[-1]


def swaks(
    address: tuple[str, int],
    sender: str,
    recipients: Sequence[str],
    data_file: Path | None = None,
    *args: str,
) -> SwaksResult:
    argv = [
        "swaks",
        "--server",
        f"{address[0]}:{address[1]}",
        "--from",
        sender,
        "--to",
        ",".join(recipients),
        "--ehlo",
        "swaks.school.test",
        "--timeout",
        str(int(CLIENT_TIMEOUT)),
    ]
    if data_file is not None:
        argv += ["--data", f"@{data_file}"]
    argv += list(args)
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=CLIENT_TIMEOUT + 10, check=False
    )
    return SwaksResult(done.returncode, done.stdout + done.stderr)


# ---- messages


_counter = iter(range(1, 1_000_000))


def message(
    *,
    sender: str = "head@school.test",
    to: Sequence[str] = ("colleague@secure.test",),
    subject: str = "Pupil welfare update",
    flagged: bool = True,
    body: str = "Please see the notes from today's meeting.\r\n",
    headers: Sequence[str] = (),
) -> bytes:
    """A small RFC 5322 message with CRLF line endings, a unique Message-ID, and (when
    `flagged`) ``X-Safeguarding: yes``; `headers` are extra header lines."""
    lines = [
        f"From: {sender}",
        f"To: {', '.join(to)}",
        f"Subject: {subject}",
        "Date: Thu, 26 Nov 2026 10:00:00 +0000",
        f"Message-ID: <e2e-{next(_counter)}-{time.monotonic_ns()}@school.test>",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
    ]
    if flagged:
        lines.append("X-Safeguarding: yes")
    lines += list(headers)
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode("utf-8")


def split_trace(relayed: bytes, original: bytes) -> list[str]:
    """The header lines the gateway prepended to `original` (which must follow them byte for
    byte), unfolded into one string per field."""
    assert relayed.endswith(original), "the relayed copy does not end with the original bytes"
    prefix = relayed[: len(relayed) - len(original)].decode("utf-8")
    fields: list[str] = []
    for line in prefix.split("\r\n")[:-1]:
        if line[:1] in (" ", "\t") and fields:
            fields[-1] += " " + line.strip()
        else:
            fields.append(line)
    return fields
