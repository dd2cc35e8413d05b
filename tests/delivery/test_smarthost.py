"""The smarthost transport against a recording SMTP server on loopback: what the upstream says
maps to the same outcomes the fake transport produces, options pass as before, and a pooled
connection the upstream dropped is replaced without losing the message; each with and without
PIPELINING advertised."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from gateway.config import loader
from gateway.delivery.smarthost import Smarthost
from gateway.delivery.transport import Outcome, Recipient, Transaction
from gateway.errors import DeliveryFailed
from rig.upstream import Upstream

A, B = "a@secure.test", "b@secure.test"
DATA = b"Subject: hello\r\nMessage-ID: <s1@school.test>\r\n\r\nBody\r\n"


@pytest.fixture(params=[True, False], ids=["pipelining", "command-by-command"])
def upstream(request: pytest.FixtureRequest) -> Iterator[Upstream]:
    # Every case both ways: PIPELINING advertised (RFC 2920 groups) and not.
    server = Upstream()
    server.pipelining = request.param
    server.start()
    yield server
    server.close()


@pytest.fixture
async def smarthost(upstream: Upstream) -> AsyncIterator[Smarthost]:
    settings = loader.load(
        None, environ={"GATEWAY_RELAY_PORT": str(upstream.port), "GATEWAY_RELAY_TIMEOUT": "1"}
    )
    transport = Smarthost(settings.relay, "gateway.school.test")
    yield transport
    await transport.close()


def transaction(*recipients: str) -> Transaction:
    return Transaction(
        "head@school.test",
        tuple(Recipient(r, ("NOTIFY=NEVER",)) for r in recipients),
        DATA,
        mail_options=("BODY=8BITMIME",),
    )


async def test_accepted_with_the_dsn_and_8bitmime_options(
    smarthost: Smarthost, upstream: Upstream
) -> None:
    sent = await smarthost.send(transaction(A))
    assert sent.accepted == [A]
    assert sent.reply is not None
    assert sent.reply.outcome is Outcome.ACCEPTED
    [message] = upstream.messages
    assert "BODY=8BITMIME" in message.mail_line
    assert "NOTIFY=NEVER" in message.rcpt_lines[0]
    assert message.data == DATA


@pytest.mark.parametrize(
    ("code", "outcome"), [(450, Outcome.DEFERRED), (550, Outcome.REFUSED)], ids=["4xx", "5xx"]
)
async def test_a_recipient_refused_at_rcpt(
    smarthost: Smarthost, upstream: Upstream, code: int, outcome: Outcome
) -> None:
    upstream.fail_rcpt = {B: code}
    sent = await smarthost.send(transaction(A, B))
    assert sent.accepted == [A]
    assert sent.refused[B].code == code
    assert sent.refused[B].outcome is outcome
    assert [m.rcpt_tos for m in upstream.messages] == [(A,)]


@pytest.mark.parametrize(
    ("stage", "code", "outcome"),
    [
        ("MAIL", 421, Outcome.DEFERRED),
        ("MAIL", 550, Outcome.REFUSED),
        ("DATA", 452, Outcome.DEFERRED),
        ("DATA", 554, Outcome.REFUSED),
    ],
)
async def test_a_transaction_refused_as_a_whole(
    smarthost: Smarthost, upstream: Upstream, stage: str, code: int, outcome: Outcome
) -> None:
    if stage == "MAIL":
        upstream.fail_mail = code
    else:
        upstream.fail_data = code
    with pytest.raises(DeliveryFailed) as caught:
        await smarthost.send(transaction(A))
    assert (caught.value.stage, caught.value.code, caught.value.outcome) == (stage, code, outcome)
    assert caught.value.temporary is outcome.temporary
    assert caught.value.__cause__ is not None  # the library's exception stays attached
    assert upstream.messages == []


async def test_upstream_down_is_unreachable(smarthost: Smarthost, upstream: Upstream) -> None:
    upstream.stop()
    with pytest.raises(DeliveryFailed) as caught:
        await smarthost.send(transaction(A))
    assert (caught.value.stage, caught.value.outcome) == ("connect", Outcome.UNREACHABLE)
    assert caught.value.temporary
    assert caught.value.text.startswith("cannot reach the upstream")
    assert isinstance(caught.value.__cause__, OSError)


async def test_upstream_slower_than_the_timeout_is_timed_out(
    smarthost: Smarthost, upstream: Upstream
) -> None:
    upstream.data_delay = 5.0
    with pytest.raises(DeliveryFailed) as caught:
        await smarthost.send(transaction(A))
    assert (caught.value.stage, caught.value.outcome) == ("DATA", Outcome.TIMED_OUT)
    assert caught.value.temporary
    assert upstream.messages == []


async def test_a_pooled_connection_the_upstream_dropped_is_replaced(
    smarthost: Smarthost, upstream: Upstream
) -> None:
    assert (await smarthost.send(transaction(A))).accepted == [A]
    upstream.stop()
    upstream.start()
    assert (await smarthost.send(transaction(B))).accepted == [B]
    assert [m.rcpt_tos for m in upstream.messages] == [(A,), (B,)]
