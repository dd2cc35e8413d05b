"""`gateway serve` end to end when things fail: the upstream down, refusing, slow; the hold
store unwritable; an unexpected error; the gateway killed mid-transaction.

The promise under test (RFC 5321 §6.1): 250 only when every recipient is relayed or durably
held; 4xx when anything is left undone, so the client retries; 5xx only for what a retry can
never fix; and a retry never makes a second copy or a second hold.
"""

from __future__ import annotations

import os
import signal
import smtplib
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from rig.gatewayproc import (
    Gateway,
    GatewayError,
    message,
    raw_session,
    readable,
    split_trace,
    transact,
)
from rig.storefault import refuse_holds

pytestmark = pytest.mark.e2e

SENDER = "head@school.test"
SECURE = "colleague@secure.test"
INSECURE = "officer@nosts.test"

SECURE_ONLY = [SECURE]
MIXED = [SECURE, INSECURE]
RECIPIENT_SETS = pytest.mark.parametrize(
    "recipients", [SECURE_ONLY, MIXED], ids=["secure-only", "mixed"]
)


def expected_holds(recipients: list[str]) -> int:
    return 1 if INSECURE in recipients else 0


# ---- the upstream down


@RECIPIENT_SETS
def test_upstream_down_tempfails_and_the_retry_arrives_once(
    gw: Gateway, recipients: list[str]
) -> None:
    gw.upstream.stop()
    original = message(to=recipients)
    reply = gw.send(SENDER, recipients, original)
    assert reply.code == 451, reply
    assert reply.text.startswith("4."), reply
    assert gw.proc.events("relay failed")
    assert len(gw.holds()) == expected_holds(recipients)

    gw.upstream.start()
    retry = gw.send(SENDER, recipients, original)
    assert retry.code == 250, retry
    [relayed] = gw.wait_relayed(1)
    assert relayed.rcpt_tos == (SECURE,)
    split_trace(relayed.data, original)
    assert len(gw.holds()) == expected_holds(recipients)
    # And a further retry (as if our 250 had been lost) relays nothing more.
    assert gw.send(SENDER, recipients, original).code == 250
    assert len(gw.relayed()) == 1
    assert len(gw.holds()) == expected_holds(recipients)


def test_upstream_restart_between_messages_is_survived(gw: Gateway) -> None:
    # The pooled connection dies with the upstream; the next message must not be lost.
    assert gw.send(SENDER, [SECURE], message(to=[SECURE])).code == 250
    gw.wait_relayed(1)
    gw.upstream.stop()
    gw.upstream.start()
    second = message(to=[SECURE])
    reply = gw.send(SENDER, [SECURE], second)
    assert reply.code == 250, reply
    _, relayed = gw.wait_relayed(2)
    split_trace(relayed.data, second)
    assert len(gw.relayed()) == 2


# ---- the upstream refusing


@pytest.mark.parametrize("flagged", [True, False], ids=["flagged", "unflagged"])
def test_upstream_refusing_one_recipient_holds_it(gw: Gateway, flagged: bool) -> None:
    refused = "gone@secure.test"
    gw.upstream.fail_rcpt = {refused: 550}
    recipients = [SECURE, refused]
    original = message(to=recipients, flagged=flagged)
    reply = gw.send(SENDER, recipients, original)
    assert reply.code == 250, reply
    [relayed] = gw.wait_relayed(1)
    assert relayed.rcpt_tos == (SECURE,)
    split_trace(relayed.data, original)
    [hold] = gw.holds()
    assert hold.id in reply.text, reply
    assert hold.addresses == [refused]
    assert hold.reasons(refused) == ["upstream-refused"]
    assert "550" in hold.facts["upstream_refusals"][refused]


@pytest.mark.parametrize(
    ("upstream_code", "client_class"),
    [(550, 5), (553, 5), (451, 4), (450, 4)],
)
def test_upstream_refusing_the_only_recipient_of_unflagged_mail(
    gw: Gateway, upstream_code: int, client_class: int
) -> None:
    gw.upstream.fail_rcpt = {SECURE: upstream_code}
    reply = gw.send(SENDER, [SECURE], message(to=[SECURE], flagged=False))
    assert reply.code // 100 == client_class, reply
    assert reply.text.startswith(f"{client_class}."), reply
    assert gw.relayed() == []
    assert gw.holds() == []
    if client_class == 4:
        # The retry, once the upstream takes it, arrives once.
        gw.upstream.fail_rcpt = {}
        original = message(to=[SECURE], flagged=False)
        assert gw.send(SENDER, [SECURE], original).code == 250
        assert len(gw.wait_relayed(1)) == 1


@pytest.mark.parametrize(
    ("stage", "upstream_code", "client_class"),
    [("MAIL", 550, 5), ("MAIL", 421, 4), ("DATA", 554, 5), ("DATA", 452, 4)],
)
def test_upstream_refusing_the_transaction_of_unflagged_mail(
    gw: Gateway, stage: str, upstream_code: int, client_class: int
) -> None:
    if stage == "MAIL":
        gw.upstream.fail_mail = upstream_code
    else:
        gw.upstream.fail_data = upstream_code
    reply = gw.send(SENDER, [SECURE], message(to=[SECURE], flagged=False))
    assert reply.code // 100 == client_class, reply
    assert gw.relayed() == []
    assert gw.holds() == []


def test_upstream_refusing_mail_of_a_mixed_message_holds_everyone(gw: Gateway) -> None:
    # Permanent refusal while part of the message is held: the refused recipient is held too,
    # never dropped.
    gw.upstream.fail_mail = 550
    reply = gw.send(SENDER, MIXED, message(to=MIXED))
    assert reply.code == 250, reply
    held = {address: hold for hold in gw.holds() for address in hold.addresses}
    assert sorted(held) == sorted(MIXED)
    assert held[SECURE].reasons(SECURE) == ["upstream-refused"]
    assert gw.relayed() == []


# ---- the store failing, and the unexpected


def test_store_write_failure_tempfails_and_relays_nothing(gw: Gateway) -> None:
    refuse_holds(gw.held_db)
    reply = gw.send(SENDER, MIXED, message(to=MIXED))
    assert reply.code == 451, reply
    assert reply.text.startswith("4.3.0"), reply
    assert "Errno" not in reply.text, reply
    assert gw.relayed() == []
    assert gw.holds() == []
    assert gw.proc.events("hold failed")


def test_unexpected_error_answers_451_without_internals(gw: Gateway) -> None:
    # Provoked from outside: the relay journal's table disappears under the running gateway,
    # so its lookup before relaying raises an error nobody planned for.
    drop_relay_journal(gw)
    reply = gw.send(SENDER, [SECURE], message(to=[SECURE], flagged=False))
    assert reply.code == 451, reply
    assert reply.text.startswith("4.3.0"), reply
    for internal in ("relay_journal", "OperationalError", "Traceback", "sqlite", ".py"):
        assert internal not in reply.text, reply
    assert gw.proc.events("unexpected error")
    assert gw.relayed() == []


def drop_relay_journal(gw: Gateway) -> None:
    db = sqlite3.connect(gw.held_db, timeout=10)
    try:
        db.execute("DROP TABLE relay_journal")
        db.commit()
    finally:
        db.close()


def restore_relay_journal(gw: Gateway) -> None:
    db = sqlite3.connect(gw.held_db, timeout=10)
    try:
        db.execute(
            "CREATE TABLE relay_journal (key TEXT NOT NULL, recipient TEXT NOT NULL,"
            " at REAL NOT NULL, PRIMARY KEY (key, recipient))"
        )
        db.commit()
    finally:
        db.close()


def test_after_an_unexpected_error_the_next_transaction_works(gw: Gateway) -> None:
    # Once answered 503 "nested MAIL command" (a 5xx) until the client sent RSET.
    drop_relay_journal(gw)
    with gw.smtp() as client:
        first = transact(client, SENDER, [SECURE], message(to=[SECURE], flagged=False))
        assert first.code == 451, first
        restore_relay_journal(gw)
        # RFC 5321 §4.1.1.4: the reply to the end of data ends the transaction, either way.
        second = message(to=[SECURE], flagged=False)
        reply = transact(client, SENDER, [SECURE], second)
        assert reply.code == 250, reply
    [relayed] = gw.wait_relayed(1)
    assert relayed.rcpt_tos == (SECURE,)
    split_trace(relayed.data, second)


# ---- slow upstream, and the gateway killed


def test_upstream_slower_than_the_relay_timeout_tempfails_then_arrives_once(
    serve: Callable[..., Gateway],
) -> None:
    gw = serve(relay={"timeout": 1.0})
    gw.upstream.data_delay = 5.0
    original = message(to=[SECURE])
    reply = gw.send(SENDER, [SECURE], original)
    assert reply.code == 451, reply
    # The gateway hung up on the upstream before its 250: that copy never committed.
    assert gw.upstream.wait_aborted(1)
    assert gw.relayed() == []
    gw.upstream.data_delay = 0.0
    assert gw.send(SENDER, [SECURE], original).code == 250
    [relayed] = gw.wait_relayed(1)
    split_trace(relayed.data, original)


@RECIPIENT_SETS
def test_kill_9_while_the_upstream_answers_data(
    serve: Callable[..., Gateway], recipients: list[str]
) -> None:
    gw = serve()
    gw.upstream.data_delay = 60.0
    original = message(to=recipients)
    with ThreadPoolExecutor(1) as pool:
        attempt = pool.submit(gw.send, SENDER, recipients, original)
        assert gw.upstream.wait_data(SECURE, 15), gw.proc.output()
        gw.proc.kill()
        # The client saw no 250: the connection closed under it.
        with pytest.raises(smtplib.SMTPServerDisconnected):
            attempt.result(timeout=15)
    assert gw.upstream.wait_aborted(1)
    assert gw.upstream.messages == []

    gw.upstream.data_delay = 0.0
    gw.proc.start()  # same config, same data_dir
    retry = gw.send(SENDER, recipients, original)
    assert retry.code == 250, retry
    [relayed] = gw.wait_relayed(1)
    assert relayed.rcpt_tos == (SECURE,)
    split_trace(relayed.data, original)
    holds = gw.holds()
    assert len(holds) == expected_holds(recipients)
    # The sender hears of the hold once: the notice the killed gateway could not send goes
    # out after the restart, and the retry queues no second one.
    notices = gw.wait_notices(expected_holds(recipients), timeout=5)
    assert len(notices) == expected_holds(recipients)
    if holds:
        assert holds[0].addresses == [INSECURE]
        assert holds[0].id in retry.text
        assert len(gw.held_bodies()) == 1
        assert notices[0].rcpt_tos == (SENDER,)


def test_sigterm_lets_the_transaction_in_progress_finish(gw: Gateway) -> None:
    gw.upstream.data_delay = 1.5
    original = message(to=[SECURE])
    with ThreadPoolExecutor(1) as pool:
        attempt = pool.submit(gw.send, SENDER, [SECURE], original)
        assert gw.upstream.wait_data(SECURE, 15), gw.proc.output()
        assert gw.proc.pid is not None
        os.kill(gw.proc.pid, signal.SIGTERM)
        gw.proc.wait_event("stopping")
        # A second SIGTERM while stopping is noted, not fatal.
        os.kill(gw.proc.pid, signal.SIGTERM)
        gw.proc.wait_event("already stopping")
        # No new sessions while stopping ...
        with pytest.raises(ConnectionRefusedError), raw_session(gw.address):
            pass
        # ... but the one in progress gets its answer, and the message arrives once.
        reply = attempt.result(timeout=15)
    assert reply.code == 250, reply
    [relayed] = gw.wait_relayed(1)
    split_trace(relayed.data, original)
    # The process exits on its own, cleanly.
    assert gw.proc.wait_exit() == 0
    assert gw.proc.events("stopped")


def test_sigterm_while_a_notice_is_being_sent_stops_promptly(
    serve: Callable[..., Gateway],
) -> None:
    # Once waited out a whole [review] sweep_interval after the notice was sent.
    gw = serve(review={"sweep_interval": "30s"})
    gw.upstream.data_delay = 1.0
    assert gw.send(SENDER, [INSECURE], message(to=[INSECURE])).code == 250
    # The held notice to the sender is in the upstream's hands, its reply 1 s away.
    assert gw.upstream.wait_data(SENDER, 10), gw.proc.output()
    began = time.monotonic()
    try:
        status = gw.proc.stop(timeout=4)
    except GatewayError:
        pytest.fail(f"still running {time.monotonic() - began:.0f} s after SIGTERM")
    assert status == 0
    assert gw.proc.events("stopped")


def test_notice_never_claims_a_delivery_the_upstream_refused(gw: Gateway) -> None:
    # The held notice is written with the hold, before the relay: it once said "Sent at once
    # to" the secure recipient, whom the upstream then refused.
    gw.upstream.fail_rcpt = {SECURE: 550}
    reply = gw.send(SENDER, MIXED, message(to=MIXED))
    assert reply.code == 250, reply
    held = {address: hold for hold in gw.holds() for address in hold.addresses}
    assert sorted(held) == sorted(MIXED)  # nobody got it: both are held
    assert gw.relayed() == []
    notices = gw.wait_notices(2)
    assert notices
    for notice in notices:
        text = readable(notice)
        assert f"Sent at once to: {SECURE}" not in text, text
