"""`gateway serve` on PostgreSQL when the database fails: stopped, then back, and a statement
that hangs behind a lock.

Flagged mail needs the database (its hold, or the journal and the proof of delivery of a
relay), so it gets 451 while the database is away, never a 250 without a durable hold; unflagged
mail stores nothing and keeps flowing. When the database returns, the node recovers on its own:
no restart. A statement stuck behind a lock ends at the statement timeout with a 451, so a stuck
database never holds an SMTP session for ever.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest

from rig import Rig
from rig.gatewayproc import Gateway, Reply, message, start_gateway
from rig.heldcli import INSECURE, SECURE, SENDER
from rig.postgres import Postgres
from rig.sharedstore import SharedStore
from rig.upstream import Upstream

pytestmark = pytest.mark.e2e

RECOVER_WITHIN = 30.0


@pytest.fixture
def node(
    rig: Rig, upstream: Upstream, tmp_path: Path, shared_store: SharedStore
) -> Iterator[Gateway]:
    """One node on its own database, giving up on the database after a second."""
    store = replace(shared_store, statement_timeout="1s", connect_timeout="1s")
    gw = start_gateway(rig, tmp_path / "node", upstream, store=store)
    try:
        yield gw
    finally:
        code = gw.proc.stop()
        assert code == 0, gw.proc.output()


@pytest.fixture
def database_down(postgres_server: Postgres) -> Iterator[Postgres]:
    """The rig's PostgreSQL server stopped for the test's first part; `start()` brings it back
    (and it is back after the test whatever happens)."""
    postgres_server.stop()
    try:
        yield postgres_server
    finally:
        if not postgres_server.running:
            postgres_server.start()


def send_until_accepted(gw: Gateway, recipient: str, original: bytes) -> Reply:
    """Send as the client's MTA would after a 4xx: again, until a 250 (or the deadline)."""
    deadline = time.monotonic() + RECOVER_WITHIN
    while True:
        reply = gw.send(SENDER, [recipient], original)
        assert reply.code < 500, reply
        if reply.code == 250 or time.monotonic() > deadline:
            return reply
        time.sleep(0.5)  # the MTA's retry interval, shortened


# What each kind of mail gets while the database is down: (flagged, recipient, code).
WHILE_DOWN = [
    pytest.param(True, INSECURE, 451, id="flagged-to-hold"),
    pytest.param(True, SECURE, 451, id="flagged-to-relay"),
    pytest.param(False, INSECURE, 250, id="unflagged"),
]


@pytest.mark.parametrize(("flagged", "recipient", "code"), WHILE_DOWN)
def test_database_down_fails_flagged_mail_closed_and_lets_unflagged_mail_through(
    node: Gateway, database_down: Postgres, flagged: bool, recipient: str, code: int
) -> None:
    original = message(to=(recipient,), flagged=flagged)
    reply = node.send(SENDER, [recipient], original)
    assert reply.code == code, reply
    if code == 250:
        [copy] = node.wait_relayed(1, of=original)
        assert copy.rcpt_tos == (recipient,)
    else:
        assert node.relayed(of=original) == []
    database_down.start()
    assert node.holds(of=original) == []


def test_the_node_recovers_on_its_own_when_the_database_returns(
    node: Gateway, database_down: Postgres
) -> None:
    original = message(to=(INSECURE,))
    assert node.send(SENDER, [INSECURE], original).code == 451
    database_down.start()
    reply = send_until_accepted(node, INSECURE, original)
    assert reply.code == 250, reply
    assert "held for review as" in reply.text
    [hold] = node.holds(of=original)
    assert hold.status == "held"
    assert node.proc.runs == 1  # the same process: nothing restarted it


@pytest.fixture
def holds_locked(shared_store: SharedStore) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """A test connection holding `holds` in ACCESS EXCLUSIVE mode in an open transaction: every
    statement on that table waits (PostgreSQL docs, "13.3.1. Table-Level Locks")."""
    conn = psycopg.connect(shared_store.dsn)
    try:
        conn.execute("LOCK TABLE holds IN ACCESS EXCLUSIVE MODE")
        yield conn
    finally:
        conn.rollback()
        conn.close()


def test_a_statement_stuck_behind_a_lock_gets_451_within_the_statement_timeout(
    node: Gateway, holds_locked: psycopg.Connection[tuple[object, ...]]
) -> None:
    original = message(to=(INSECURE,))
    with node.smtp() as client:
        started = time.monotonic()
        code, _ = client.mail(SENDER)
        assert code == 250
        assert client.rcpt(INSECURE)[0] == 250
        code, text = client.data(original)
        waited = time.monotonic() - started
        assert code == 451, text
        # The session is still ours: the gateway answers the next command at once.
        assert client.rset()[0] == 250
    # The statement timeout is 1 s; well under the SMTP client's patience, never for ever.
    assert waited < 10, waited
    holds_locked.rollback()
    assert node.holds(of=original) == []
    reply = node.send(SENDER, [INSECURE], original)
    assert reply.code == 250, reply
    assert len(node.holds(of=original)) == 1
