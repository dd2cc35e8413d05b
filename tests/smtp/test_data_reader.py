"""The DATA reader (gateway.smtp.data.read_data) on its own: the end of data, dot-unstuffing,
the size limit and what is left for the next command, for bytes arriving in any pieces.

The line-by-line reader it replaced is kept here as the reference model: the block reader must
return what it returned and leave in the stream what it left, for any input and any split."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.smtp.data import read_data

_CRLF = b"\r\n"


async def reference_read_data(reader: asyncio.StreamReader, limit: int | None) -> bytes | None:
    """The reader as it was: one readuntil(CRLF) per line (or per buffer of a long line)."""
    parts: list[bytes] = []
    size = 0
    too_big = False
    at_line_start = True
    while True:
        try:
            chunk = await reader.readuntil(_CRLF)
        except asyncio.LimitOverrunError as overrun:
            chunk = await reader.readexactly(overrun.consumed)
        if at_line_start and chunk == b".\r\n":
            break
        size += len(chunk)
        if limit and size > limit and not too_big:
            too_big = True
            parts.clear()
        if not too_big:
            parts.append(chunk[1:] if at_line_start and chunk.startswith(b".") else chunk)
        at_line_start = chunk.endswith(_CRLF)
    return None if too_big else b"".join(parts)


Reader = Callable[[asyncio.StreamReader, int | None], Awaitable[bytes | None]]


@dataclass(frozen=True)
class Outcome:
    result: bytes | str | None  # the text, None (too big), or the exception's name
    left: bytes  # what the stream still held for the next command


async def run_reader(
    read: Reader,
    pieces: Sequence[bytes],
    *,
    limit: int | None = None,
    buffer_limit: int = 1001,  # aiosmtpd's reader limit (its line_length_limit)
) -> Outcome:
    """Feed ``pieces`` one at a time, letting the reader run between them (as TCP segments
    arrive), then the end of the stream; return what the reader gave and what it left."""
    reader = asyncio.StreamReader(limit=buffer_limit)

    async def feed() -> None:
        for piece in pieces:
            reader.feed_data(piece)
            for _ in range(3):  # let the reader take what it can before the next piece
                await asyncio.sleep(0)
        reader.feed_eof()

    feeder = asyncio.ensure_future(feed())
    result: bytes | str | None
    try:
        result = await read(reader, limit)
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
        result = type(exc).__name__
    await feeder
    return Outcome(result, await reader.read())


NEXT = b"RSET\r\nMAIL FROM:<head@school.test>\r\n"

CASES: list[tuple[str, bytes, bytes]] = [
    # (name, bytes sent after DATA's 354, the text the filter must get); NEXT follows each
    ("empty message", b".\r\n", b""),
    ("one empty line", b"\r\n.\r\n", b"\r\n"),
    ("lone dot first line, stuffed", b"..\r\n.\r\n", b".\r\n"),
    ("dot-dot-x lines", b"..x\r\na\r\n..y\r\n...z\r\n.\r\n", b".x\r\na\r\n.y\r\n..z\r\n"),
    ("a dot not at a line start stays", b"a.b\r\n a..\r\n.\r\n", b"a.b\r\n a..\r\n"),
    ("bare LF dot LF does not end", b"a\n.\nb\r\n.\r\n", b"a\n.\nb\r\n"),
    ("bare CR dot CR does not end", b"a\r.\rb\r\n.\r\n", b"a\r.\rb\r\n"),
    ("LF dot CRLF does not end", b"a\n.\r\nb\r\n.\r\n", b"a\n.\r\nb\r\n"),
    # the line ".\nb" starts with a dot: it is unstuffed, and is not the end
    ("CRLF dot LF does not end", b"a\r\n.\nb\r\n.\r\n", b"a\r\n\nb\r\n"),
    ("a line that is only a bare CR", b"\r\r\n.\r\n", b"\r\r\n"),
    ("a bare LF before the first dot", b"\n.\r\n.\r\n", b"\n.\r\n"),
    (
        "8-bit and UTF-8 bytes as sent",
        "Grüße\r\n\xff\r\n.\r\n".encode("latin-1"),
        "Grüße\r\n\xff\r\n".encode("latin-1"),
    ),
    ("a 1,000,001-byte line", b"L" * 1_000_001 + b"\r\n.\r\n", b"L" * 1_000_001 + b"\r\n"),
    ("a long line of dots", b"." * 5_001 + b"\r\n.\r\n", b"." * 5_000 + b"\r\n"),
]


def _split_everywhere(data: bytes) -> list[list[bytes]]:
    if len(data) > 64:
        return [[data], [data[i : i + 997] for i in range(0, len(data), 997)]]
    return (
        [[data]]
        + [[data[:i], data[i:]] for i in range(1, len(data))]
        + [[bytes([b]) for b in data]]
    )


@pytest.mark.parametrize(("sent", "text"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_the_text_and_what_is_left_for_the_next_command(sent: bytes, text: bytes) -> None:
    for pieces in _split_everywhere(sent + NEXT):
        outcome = await run_reader(read_data, pieces)
        assert outcome == Outcome(text, NEXT), pieces[:3]
    assert await run_reader(reference_read_data, [sent + NEXT]) == Outcome(text, NEXT)


@pytest.mark.parametrize("offset", range(1, 5))
@pytest.mark.parametrize("before", [b"", b"x", b"xy\r\n", b"\r", b"." * 3], ids=repr)
async def test_a_terminator_split_at_every_offset_still_ends_the_data(
    offset: int, before: bytes
) -> None:
    body = b"line one\r\n" + before + b"\r\n"
    data = body + b".\r\n" + NEXT
    at = len(body) - 2 + offset  # inside CRLF "." CRLF
    outcome = await run_reader(read_data, [data[:at], data[at:]])
    assert outcome == Outcome(body.replace(b"\r\n.", b"\r\n"), NEXT)


async def test_over_the_size_limit_none_and_the_whole_message_is_read() -> None:
    sent = b"q" * 12_000 + b"\r\n.\r\n"
    outcome = await run_reader(read_data, [sent[:5000], sent[5000:] + NEXT], limit=10_000)
    assert outcome == Outcome(None, NEXT)


@pytest.mark.parametrize(
    ("text", "limit", "fits"),
    [
        (b"a" * 8 + b"\r\n", 10, True),
        (b"a" * 9 + b"\r\n", 10, False),
        (b"..\r\n", 4, True),
        (b"..\r\n", 3, False),
    ],
)
async def test_the_limit_counts_the_text_as_sent(text: bytes, limit: int, fits: bool) -> None:
    # as the line reader did: stuffed dots count, the final "." CRLF does not
    outcome = await run_reader(read_data, [text + b".\r\n" + NEXT], limit=limit)
    expected = await run_reader(reference_read_data, [text + b".\r\n" + NEXT], limit=limit)
    assert outcome == expected
    assert (outcome.result is not None) == fits


async def test_the_stream_ending_inside_data_is_an_incomplete_read() -> None:
    outcome = await run_reader(read_data, [b"a\r\nb\r\n.", b"\r"])
    assert outcome == Outcome("IncompleteReadError", b"")


# Bytes that make ends of data, stuffed dots and their near misses likely.
_ATOMS = st.sampled_from(
    [b"\r", b"\n", b".", b"a", b"\r\n", b"\r\n.", b".\r\n", b"\r\n.\r\n", b"\xff", b"z" * 40]
)
_STREAMS = st.one_of(st.lists(_ATOMS, max_size=60).map(b"".join), st.binary(max_size=300)).map(
    lambda data: data + b"\r\n.\r\n" + NEXT
)  # most examples end; some end early


@settings(database=None, max_examples=500, deadline=None)
@given(
    data=_STREAMS,
    cuts=st.lists(st.integers(min_value=1, max_value=64), max_size=20),
    limit=st.one_of(st.none(), st.integers(min_value=0, max_value=200)),
    buffer_limit=st.sampled_from([5, 8, 17, 64, 1001]),
)
def test_the_block_reader_does_what_the_line_reader_did(
    data: bytes, cuts: list[int], limit: int | None, buffer_limit: int
) -> None:
    pieces, at = [], 0
    for cut in cuts:
        pieces.append(data[at : at + cut])
        at += cut
    pieces = [piece for piece in pieces if piece] + ([data[at:]] if data[at:] else [])

    async def both() -> tuple[Outcome, Outcome]:
        new = await run_reader(read_data, pieces, limit=limit, buffer_limit=buffer_limit)
        old = await run_reader(reference_read_data, pieces, limit=limit, buffer_limit=buffer_limit)
        return new, old

    new, old = asyncio.run(both())
    assert new == old
