"""RFC 2920 pipelining to the smarthost: MAIL, every RCPT and DATA go in one write and every
reply is read and checked in order (§3.1), against the recording upstream on loopback and a
scripted one; the same results as command by command; the reply reader loses no reply however
the peer's bytes are split."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, cast

import aiosmtplib
import pytest
import uvloop
from aiosmtplib.email import quote_address
from aiosmtplib.protocol import SMTPProtocol
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config import loader
from gateway.delivery import pipelining
from gateway.delivery.smarthost import Smarthost
from gateway.delivery.transport import Outcome, Recipient, Transaction
from gateway.errors import DeliveryFailed
from rig.ports import LOOPBACK
from rig.upstream import Upstream

A, B, C = "a@secure.test", "b@secure.test", "c@secure.test"
DATA = b"Subject: hello\r\nMessage-ID: <p1@school.test>\r\n\r\n.leading dot\r\nBody\r\n"
GROUP_END = b"DATA\r\n"


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream().start()
    yield server
    server.close()


def relay(port: int) -> Smarthost:
    environ = {"GATEWAY_RELAY_PORT": str(port), "GATEWAY_RELAY_TIMEOUT": "2"}
    return Smarthost(loader.load(None, environ=environ).relay, "gateway.school.test")


@pytest.fixture
async def smarthost(upstream: Upstream) -> AsyncIterator[Smarthost]:
    transport = relay(upstream.port)
    yield transport
    await transport.close()


def transaction(*recipients: str) -> Transaction:
    return Transaction(
        "head@school.test",
        tuple(Recipient(r, ("NOTIFY=NEVER",)) for r in recipients),
        DATA,
        mail_options=("BODY=8BITMIME",),
        prefix=b"Received: by gateway.school.test\r\n",
    )


def groups(upstream: Upstream) -> list[bytes]:
    """The reads that carried a MAIL command."""
    return [chunk for chunk in upstream.chunks if chunk.startswith(b"MAIL FROM:")]


async def test_mail_every_rcpt_and_data_arrive_in_one_write(
    smarthost: Smarthost, upstream: Upstream
) -> None:
    sent = await smarthost.send(transaction(A, B, C))
    assert sent.accepted == [A, B, C]
    assert sent.reply is not None
    assert sent.reply.outcome is Outcome.ACCEPTED
    [group] = groups(upstream)
    assert group == (
        b"MAIL FROM:<head@school.test> BODY=8BITMIME\r\n"
        + b"".join(b"RCPT TO:<%s> NOTIFY=NEVER\r\n" % r.encode() for r in (A, B, C))
        + GROUP_END
    )
    [message] = upstream.messages
    assert message.data == b"Received: by gateway.school.test\r\n" + DATA  # de-stuffed intact


async def test_without_pipelining_each_command_waits_for_its_reply(
    smarthost: Smarthost, upstream: Upstream
) -> None:
    upstream.pipelining = False
    sent = await smarthost.send(transaction(A, B))
    assert sent.accepted == [A, B]
    assert groups(upstream) == [b"MAIL FROM:<head@school.test> BODY=8BITMIME\r\n"]
    assert b"DATA\r\n" in upstream.chunks


@pytest.mark.parametrize(
    ("refusals", "accepted"),
    [
        ({B: 450}, [A, C]),
        ({A: 550, C: 452}, [B]),
        ({A: 550, B: 551, C: 450}, []),
    ],
    ids=["one-4xx", "5xx-and-4xx", "all-refused"],
)
async def test_recipients_refused_in_a_group(
    smarthost: Smarthost, upstream: Upstream, refusals: dict[str, int], accepted: list[str]
) -> None:
    upstream.fail_rcpt = refusals
    sent = await smarthost.send(transaction(A, B, C))
    assert sent.accepted == accepted
    assert {address: reply.code for address, reply in sent.refused.items()} == refusals
    if accepted:
        assert [m.rcpt_tos for m in upstream.messages] == [tuple(accepted)]
    else:
        assert sent.reply is None  # nothing delivered, and no text was sent
        assert upstream.messages == []
        assert upstream.transcript[-1] == "RSET"
    # The connection is still in step: the next message goes through on it.
    upstream.fail_rcpt = {}
    assert (await smarthost.send(transaction(A))).accepted == [A]
    assert upstream.connections == 1


async def test_mail_refused_fails_the_transaction_at_mail(
    smarthost: Smarthost, upstream: Upstream
) -> None:
    upstream.fail_mail = 550
    with pytest.raises(DeliveryFailed) as caught:
        await smarthost.send(transaction(A, B))
    assert (caught.value.stage, caught.value.code) == ("MAIL", 550)
    assert caught.value.outcome == Outcome.REFUSED
    assert upstream.messages == []
    assert upstream.transcript[-3:] == [f"RCPT TO:<{B}> NOTIFY=NEVER", "DATA", "RSET"]
    upstream.fail_mail = None
    assert (await smarthost.send(transaction(A))).accepted == [A]


@pytest.mark.parametrize(("code", "outcome"), [(451, Outcome.DEFERRED), (554, Outcome.REFUSED)])
async def test_the_text_refused(
    smarthost: Smarthost, upstream: Upstream, code: int, outcome: Outcome
) -> None:
    upstream.fail_data = code
    with pytest.raises(DeliveryFailed) as caught:
        await smarthost.send(transaction(A, B))
    assert (caught.value.stage, caught.value.code, caught.value.outcome) == ("DATA", code, outcome)
    assert upstream.messages == []


@pytest.mark.parametrize(("verb", "stage", "code"), [("MAIL", "MAIL", 421), ("RCPT", "DATA", 451)])
async def test_an_upstream_that_closes_in_the_middle_of_a_group(
    smarthost: Smarthost, upstream: Upstream, verb: str, stage: str, code: int
) -> None:
    upstream.drop_at = verb
    with pytest.raises(DeliveryFailed) as caught:
        await smarthost.send(transaction(A, B))
    assert (caught.value.stage, caught.value.code) == (stage, code)
    assert caught.value.outcome == Outcome.UNREACHABLE
    assert upstream.messages == []
    upstream.drop_at = None
    assert (await smarthost.send(transaction(A))).accepted == [A]


def test_pipelined_on_uvloop(upstream: Upstream) -> None:
    # The gateway runs on uvloop, whose transports keep the protocol's methods: the group's
    # replies must still all be read there.
    async def run() -> list[list[str]]:
        transport = relay(upstream.port)
        try:
            upstream.fail_rcpt = {B: 550}
            first = await transport.send(transaction(A, B, C))
            second = await transport.send(transaction(C))
            return [first.accepted, second.accepted]
        finally:
            await transport.close()

    loop = uvloop.new_event_loop()
    try:
        assert loop.run_until_complete(run()) == [[A, C], [C]]
    finally:
        loop.close()
    assert len(groups(upstream)) == 2
    assert upstream.connections == 1


# ---- a scripted upstream: replies that the recording one never gives


class Scripted:
    """Greets, answers EHLO with PIPELINING, then answers each command line from ``answer``
    (verb -> reply line), all the replies to one read in one write; in DATA, the text's end
    gets ``end_reply``. Keeps what it read."""

    def __init__(self, answer: dict[str, str], end_reply: str = "250 2.0.0 Ok") -> None:
        self.answer = answer
        self.end_reply = end_reply
        self.received = bytearray()
        self.server: asyncio.Server | None = None
        self.sessions: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._session, LOOPBACK, 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for writer in self.sessions.values():
            writer.close()
        await asyncio.gather(*self.sessions, return_exceptions=True)

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.sessions[task] = writer
        writer.write(b"220 scripted.test ESMTP\r\n")
        buffer, in_data = b"", False
        while chunk := await reader.read(65536):
            self.received += chunk
            buffer += chunk
            out = []
            while True:
                if in_data:
                    end = buffer.find(b"\r\n.\r\n") if buffer != b".\r\n" else -2
                    if end == -1:
                        break
                    buffer = b"" if end == -2 else buffer[end + 5 :]
                    out.append(self.end_reply)
                    in_data = False
                    continue
                line, sep, rest = buffer.partition(b"\r\n")
                if not sep:
                    break
                buffer = rest
                verb = line.split(b" ", 1)[0].decode().upper()
                if verb == "EHLO":
                    out.append("250-scripted.test\r\n250 PIPELINING")
                else:
                    out.append(self.answer.get(verb, "250 2.0.0 Ok"))
                in_data = verb == "DATA" and out[-1].startswith("354")
            if out:
                writer.write("".join(f"{reply}\r\n" for reply in out).encode())
        writer.close()
        await writer.wait_closed()


async def scripted_send(server: Scripted, t: Transaction) -> Any:
    port = await server.start()
    transport = relay(port)
    try:
        return await transport.send(t)
    finally:
        await transport.close()
        await server.close()


async def test_data_accepted_after_every_rcpt_refused_gets_a_lone_dot() -> None:
    # RFC 2920 §3.1: the client cannot assume DATA is refused because every RCPT was.
    server = Scripted(
        {"RCPT": "550 5.1.1 no such user", "DATA": "354 go ahead"},
        end_reply="554 5.5.1 no valid recipients",
    )
    sent = await scripted_send(server, transaction(A, B))
    assert sent.accepted == []
    assert set(sent.refused) == {A, B}
    assert sent.reply is None
    text = bytes(server.received)
    after_group = text.split(GROUP_END, 1)[1]
    assert after_group.startswith(b".\r\nRSET\r\n")  # the empty text, then RSET
    assert DATA not in text


@pytest.mark.parametrize(("code", "outcome"), [(451, Outcome.DEFERRED), (554, Outcome.REFUSED)])
async def test_data_itself_refused_sends_no_text(code: int, outcome: Outcome) -> None:
    server = Scripted({"DATA": f"{code} {code // 100}.3.0 not now"})
    with pytest.raises(DeliveryFailed) as caught:
        await scripted_send(server, transaction(A))
    assert (caught.value.stage, caught.value.code, caught.value.outcome) == ("DATA", code, outcome)
    assert b"Message-ID" not in bytes(server.received)


async def test_every_reply_in_one_write_is_read() -> None:
    server = Scripted({"RCPT": "250 2.1.5 Ok", "DATA": "354 go ahead"})
    sent = await scripted_send(server, transaction(A, B, C))
    assert sent.accepted == [A, B, C]
    assert sent.reply is not None
    assert sent.reply.code == 250


# ---- the reply reader, whatever the chunks


class _Wire(asyncio.Transport):
    """What the protocol writes, and a hook that answers a write with chunks of replies,
    each in its own loop callback (several may arrive before the reader runs again)."""

    def __init__(self, respond: Callable[[bytes], list[bytes]]) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.respond = respond
        self.protocol: asyncio.BaseProtocol | None = None
        self.closed = False

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        assert self.protocol is not None
        return self.protocol

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written.append(bytes(data))
        loop = asyncio.get_running_loop()
        for chunk in self.respond(bytes(data)):
            # Whichever protocol is on the transport when the bytes arrive, as a loop does.
            loop.call_soon(lambda chunk=chunk: cast(Any, self.get_protocol()).data_received(chunk))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


def _wire_reply(code: int, lines: list[str]) -> bytes:
    return b"".join(
        b"%d%s%s\r\n" % (code, b"-" if i < len(lines) - 1 else b" ", line.encode())
        for i, line in enumerate(lines)
    )


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points) if b > a]


_REPLY = st.tuples(
    st.sampled_from([250, 251, 354, 421, 450, 503, 550, 554]),
    st.lists(st.text("abcdefg .-", min_size=0, max_size=12), min_size=1, max_size=3),
)


@settings(max_examples=60, deadline=None)
@given(
    rcpts=st.lists(_REPLY, min_size=1, max_size=4),
    mail=_REPLY,
    data=_REPLY,
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=8),
)
def test_the_replies_of_a_group_however_split(
    rcpts: list[tuple[int, list[str]]],
    mail: tuple[int, list[str]],
    data: tuple[int, list[str]],
    cuts: list[int],
) -> None:
    group = [mail, *rcpts, data]
    stream = b"".join(_wire_reply(code, lines) for code, lines in group)

    def respond(written: bytes) -> list[bytes]:
        if written.endswith(GROUP_END):
            return _split(stream, cuts)
        return [b"250 2.0.0 done\r\n"]  # the text, or the lone dot

    def alone(reply: bytes) -> tuple[int, str]:
        # The oracle: aiosmtplib's own parser, given one reply at a time.
        protocol = SMTPProtocol(loop=asyncio.get_running_loop())
        protocol._buffer.extend(reply)
        parsed = protocol._read_response_from_buffer()
        assert parsed is not None
        return parsed.code, parsed.message

    async def run() -> tuple[pipelining.Exchange, _Wire, list[tuple[int, str]]]:
        expected = [alone(_wire_reply(code, lines)) for code, lines in group]
        wire = _Wire(respond)
        protocol = SMTPProtocol(loop=asyncio.get_running_loop())
        wire.protocol = protocol
        protocol.connection_made(wire)
        protocol._response_pending = False  # past the greeting
        client = aiosmtplib.SMTP(timeout=5)
        client.protocol = protocol
        commands = [b"RCPT TO:<r%d@secure.test>\r\n" % i for i in range(len(rcpts))]
        mail_command = b"MAIL FROM:<s@school.test>\r\n"
        exchange = await pipelining.transact(client, mail_command, commands, DATA)
        return exchange, wire, expected

    exchange, wire, expected = asyncio.run(run())
    replies = cast(list[aiosmtplib.SMTPResponse], [exchange.mail, *exchange.rcpts, exchange.data])
    assert [(r.code, r.message) for r in replies] == expected
    assert exchange.lost is None
    accepted = mail[0] == 250 and any(code in (250, 251) for code, _ in rcpts)
    if data[0] != 354:
        assert len(wire.written) == 1  # no text after a refused DATA
        assert exchange.end is None
    elif accepted:
        assert wire.written[1].endswith(b"..leading dot\r\nBody\r\n.\r\n")
    else:
        assert wire.written[1] == b".\r\n"  # RFC 2920 §3.1: the lone dot
    assert wire.protocol is not None
    assert isinstance(wire.get_protocol(), SMTPProtocol)  # aiosmtplib's protocol back in place


def test_commands_are_those_aiosmtplib_sends_and_refuse_injection() -> None:
    assert (
        pipelining.command(b"RCPT TO:", "Ann <a@secure.test>", ["NOTIFY=NEVER"], "ascii")
        == b"RCPT TO:<a@secure.test> NOTIFY=NEVER\r\n"
    )
    assert pipelining.command(b"MAIL FROM:", "", [], "ascii") == b"MAIL FROM:<>\r\n"
    with pytest.raises(ValueError, match="prohibited control character"):
        pipelining.command(b"MAIL FROM:", "a@school.test", ["X=1\r\nRSET"], "ascii")


@pytest.mark.parametrize(
    ("address", "error"),
    [
        ("a@school.test\x00", "prohibited control character"),
        ("a\x7f@school.test", "prohibited control character"),
        ("jürgen@school.test", "codec can't encode"),  # without SMTPUTF8: ASCII only
    ],
    ids=ascii,
)
def test_an_address_refused_once_is_refused_every_time(address: str, error: str) -> None:
    # The paths are remembered per address; what cannot be sent must never be.
    for _ in range(2):
        with pytest.raises(ValueError, match=error):
            pipelining.command(b"RCPT TO:", address, [], "ascii")


def test_a_remembered_path_is_sent_as_a_fresh_one() -> None:
    for address in ["Ann <a@secure.test>", "jürgen@school.test", '"a b"@school.test', ""]:
        expected = b"MAIL FROM:" + quote_address(address).encode("utf-8") + b"\r\n"
        for _ in range(2):
            assert pipelining.command(b"MAIL FROM:", address, [], "utf-8") == expected
