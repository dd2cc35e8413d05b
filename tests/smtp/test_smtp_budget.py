"""The DATA budget at the SMTP face (gateway.smtp.budget): a bounded number of messages between
their 354 and their reply, and of large messages past the threshold. A session over a bound
waits, then gets a 4xx; nothing accepted is lost, and a refused session can go on.

The clients below stop half-way through their message and go on when the test says so; what
the test waits for is the budget's own count of sessions waiting, never a length of time."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.smtp.budget import DataBudget, Slots
from rig.gatewayproc import HOSTNAME
from rig.pki import RigCA
from support.smtpface import Client, Face, StartFace

HEADERS = b"From: head@school.test\r\nTo: friend@secure.test\r\nSubject: budget\r\n\r\n"
LONG_WAIT = 30.0  # never reached when the test passes: the slot comes first
SHORT_WAIT = 0.05  # the bound a refused session runs into


def message(tag: bytes, size: int) -> tuple[bytes, bytes]:
    """A message of about ``size`` bytes in two halves (dot-stuffed lines included)."""
    line = b"." + tag * 70 + b"\r\n"
    body = HEADERS + line * (size // len(line))
    middle = len(body) // 2
    return body[:middle], body[middle:]


async def until(condition: Callable[[], bool]) -> None:
    """Let the face run until ``condition`` holds (the budget's counts change as it does)."""
    for _ in range(10_000):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("the face never reached the state the test waits for")


async def start_transaction(face: Face) -> Client:
    client = await face.connect()
    assert (await client.command("MAIL FROM:<head@school.test>")).code == 250
    assert (await client.command("RCPT TO:<friend@secure.test>")).code == 250
    return client


async def open_data(face: Face) -> Client:
    client = await start_transaction(face)
    reply = await client.command("DATA")
    assert reply.code == 354, reply
    return client


def unstuffed(*parts: bytes) -> bytes:
    return b"".join(parts).replace(b"\r\n.", b"\r\n").removeprefix(b".")


async def test_over_the_bound_the_354_waits_for_a_reply(start_face: StartFace) -> None:
    budget = DataBudget(2, 1, 1_000_000, LONG_WAIT)
    face = await start_face(budget=budget)
    a_first, a_rest = message(b"a", 4_000)
    b_first, b_rest = message(b"b", 4_000)
    c_first, c_rest = message(b"c", 4_000)
    a, b = await open_data(face), await open_data(face)
    await a.send(a_first)
    await b.send(b_first)
    c = await start_transaction(face)
    await c.send(b"DATA\r\n")
    c_data = asyncio.create_task(c.reply())
    await until(lambda: budget.data.waiting == 1)
    assert not c_data.done()  # no 354 while two messages are in their DATA phase

    await a.send(a_rest + b".\r\n")
    assert (await a.reply()).code == 250
    assert (await c_data).code == 354  # A's reply freed the slot
    await c.send(c_first + c_rest + b".\r\n")
    assert (await c.reply()).code == 250
    await b.send(b_rest + b".\r\n")
    assert (await b.reply()).code == 250

    received = [incoming.data for incoming in face.filter.received]
    expected = [unstuffed(a_first, a_rest), unstuffed(c_first, c_rest), unstuffed(b_first, b_rest)]
    assert received == expected
    assert (budget.data.in_use, budget.data.waiting) == (0, 0)


async def test_past_the_wait_451_the_transaction_is_reset_and_the_session_goes_on(
    start_face: StartFace,
) -> None:
    budget = DataBudget(2, 1, 1_000_000, SHORT_WAIT)
    face = await start_face(budget=budget)
    a_first, a_rest = message(b"a", 4_000)
    b_first, b_rest = message(b"b", 4_000)
    a, b = await open_data(face), await open_data(face)
    await a.send(a_first)
    await b.send(b_first)
    c = await start_transaction(face)

    busy = await c.command("DATA")
    assert (busy.code, busy.text[:5]) == (451, "4.3.2"), busy  # RFC 3463 §3.3
    assert (await c.command("DATA")).code == 503  # reset: no recipients any more
    assert (await c.command("RSET")).code == 250
    await a.send(a_rest + b".\r\n")
    assert (await a.reply()).code == 250
    c_first, c_rest = message(b"c", 4_000)
    c2 = await open_data_again(c)
    await c2.send(c_first + c_rest + b".\r\n")
    assert (await c2.reply()).code == 250
    await b.send(b_rest + b".\r\n")
    assert (await b.reply()).code == 250
    assert (await c.command("QUIT")).code == 221

    received = [incoming.data for incoming in face.filter.received]
    assert received == [
        unstuffed(a_first, a_rest),
        unstuffed(c_first, c_rest),
        unstuffed(b_first, b_rest),
    ]


async def open_data_again(client: Client) -> Client:
    assert (await client.command("MAIL FROM:<head@school.test>")).code == 250
    assert (await client.command("RCPT TO:<friend@secure.test>")).code == 250
    assert (await client.command("DATA")).code == 354
    return client


async def test_a_large_message_waits_for_its_slot_and_arrives_whole(
    start_face: StartFace,
) -> None:
    budget = DataBudget(4, 1, 10_000, LONG_WAIT)
    face = await start_face(budget=budget)
    a_first, a_rest = message(b"a", 40_000)
    b_first, b_rest = message(b"b", 40_000)
    small_first, small_rest = message(b"s", 5_000)
    a = await open_data(face)
    await a.send(a_first)  # past the threshold: A takes the one large slot
    await until(lambda: budget.large.in_use == 1)
    b = await open_data(face)
    await b.send(b_first + b_rest + b".\r\n")  # all of it: the face reads only the first part
    await until(lambda: budget.large.waiting == 1)
    b_reply = asyncio.create_task(b.reply())

    # A message under the threshold needs no large slot: it goes through meanwhile.
    small = await open_data(face)
    await small.send(small_first + small_rest + b".\r\n")
    assert (await small.reply()).code == 250
    assert not b_reply.done()

    await a.send(a_rest + b".\r\n")
    assert (await a.reply()).code == 250
    assert (await b_reply).code == 250
    # The session goes on after a large message: what follows its dot is a command again.
    assert (await b.command("MAIL FROM:<head@school.test>")).code == 250

    received = [incoming.data for incoming in face.filter.received]
    assert received == [
        unstuffed(small_first, small_rest),
        unstuffed(a_first, a_rest),
        unstuffed(b_first, b_rest),
    ]
    assert (budget.large.in_use, budget.data.in_use) == (0, 0)


async def test_a_large_message_that_waits_too_long_gets_421_and_nothing_is_kept(
    start_face: StartFace,
) -> None:
    budget = DataBudget(4, 1, 10_000, SHORT_WAIT)
    face = await start_face(budget=budget)
    a_first, a_rest = message(b"a", 40_000)
    b_first, _ = message(b"b", 40_000)
    a = await open_data(face)
    await a.send(a_first)
    await until(lambda: budget.large.in_use == 1)
    b = await open_data(face)
    await b.send(b_first)

    refused = await b.reply()
    assert (refused.code, refused.text[:5]) == (421, "4.3.2"), refused  # RFC 5321 §3.8
    with pytest.raises(EOFError):
        await b.reply()  # the connection is closed
    await a.send(a_rest + b".\r\n")
    assert (await a.reply()).code == 250

    assert [incoming.data for incoming in face.filter.received] == [unstuffed(a_first, a_rest)]
    await until(lambda: budget.data.in_use == 0)
    assert budget.large.in_use == 0


async def test_a_session_that_leaves_mid_message_gives_its_slots_back(
    start_face: StartFace,
) -> None:
    budget = DataBudget(1, 1, 10_000, LONG_WAIT)
    face = await start_face(budget=budget)
    first, _ = message(b"a", 40_000)
    a = await open_data(face)
    await a.send(first)
    await until(lambda: budget.large.in_use == 1)
    a.writer.close()
    await until(lambda: budget.data.in_use == 0)
    assert budget.large.in_use == 0
    whole_first, whole_rest = message(b"b", 40_000)
    b = await open_data(face)  # the one DATA slot is free again
    await b.send(whole_first + whole_rest + b".\r\n")
    assert (await b.reply()).code == 250


# ---- the slots themselves


async def test_slots_are_handed_out_in_arrival_order() -> None:
    slots = Slots(1)
    assert await slots.acquire(LONG_WAIT)
    order: list[str] = []

    async def take(name: str) -> None:
        assert await slots.acquire(LONG_WAIT)
        order.append(name)
        slots.release()

    waiting = [asyncio.create_task(take(name)) for name in ("first", "second", "third")]
    await until(lambda: slots.waiting == 3)
    slots.release()
    await asyncio.gather(*waiting)
    assert order == ["first", "second", "third"]
    assert (slots.in_use, slots.waiting) == (0, 0)


async def test_a_waiter_that_gives_up_or_is_cancelled_takes_no_permit() -> None:
    slots = Slots(1)
    assert await slots.acquire(LONG_WAIT)
    assert not await slots.acquire(SHORT_WAIT)  # gave up
    cancelled = asyncio.create_task(slots.acquire(LONG_WAIT))
    await until(lambda: slots.waiting == 1)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    slots.release()
    assert (slots.in_use, slots.waiting) == (0, 0)
    assert await slots.acquire(SHORT_WAIT)  # the permit came back to the pool


async def test_a_permit_handed_over_as_the_wait_ends_is_not_lost() -> None:
    slots = Slots(1)
    assert await slots.acquire(LONG_WAIT)
    late = asyncio.create_task(slots.acquire(0.0))
    await asyncio.sleep(0)  # the waiter is queued
    slots.release()  # handed to it in the same turn as its time runs out
    if await late:
        slots.release()
    assert (slots.in_use, slots.waiting) == (0, 0)


async def test_the_allocator_is_told_once_the_last_large_message_is_done(
    start_face: StartFace,
) -> None:
    done: list[int] = []
    budget = DataBudget(4, 1, 10_000, LONG_WAIT, after_large=lambda: done.append(1))
    face = await start_face(budget=budget)
    for size in (5_000, 40_000, 5_000):
        first, rest = message(b"m", size)
        client = await open_data(face)
        await client.send(first + rest + b".\r\n")
        assert (await client.reply()).code == 250
        await until(lambda: budget.data.in_use == 0)
    assert done == [1]  # after the large one only


async def test_inside_tls_a_large_message_waits_for_its_slot_and_arrives_whole(
    start_face: StartFace, tmp_path: Path
) -> None:
    # After STARTTLS the session reads through the TLS transport, which pauses alike.
    ca = RigCA(tmp_path)
    leaf = ca.issue((HOSTNAME,))
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(leaf.cert_file, leaf.key_file)
    client_context = ssl.create_default_context(cafile=str(ca.ca_file))
    budget = DataBudget(4, 1, 10_000, LONG_WAIT)
    face = await start_face(budget=budget, tls=server)

    async def tls_data() -> Client:
        client = await face.connect()
        assert (await client.command("STARTTLS")).code == 220
        await client.writer.start_tls(client_context, server_hostname=HOSTNAME)
        assert (await client.command("EHLO client.school.test")).code == 250
        assert (await client.command("MAIL FROM:<head@school.test>")).code == 250
        assert (await client.command("RCPT TO:<friend@secure.test>")).code == 250
        assert (await client.command("DATA")).code == 354
        return client

    a_first, a_rest = message(b"a", 60_000)
    b_first, b_rest = message(b"b", 60_000)
    a = await tls_data()
    await a.send(a_first)
    await until(lambda: budget.large.in_use == 1)
    b = await tls_data()
    b.writer.write(b_first + b_rest + b".\r\n")  # no drain: the face stops reading
    await until(lambda: budget.large.waiting == 1)
    await a.send(a_rest + b".\r\n")
    assert (await a.reply()).code == 250
    assert (await b.reply()).code == 250
    received = [incoming.data for incoming in face.filter.received]
    assert received == [unstuffed(a_first, a_rest), unstuffed(b_first, b_rest)]
