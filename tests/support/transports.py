"""An in-memory delivery ``Transport`` for in-process tests: it records every transaction and
answers from a script, per recipient and per call.

    transport = FakeTransport()                       # accepts everyone
    transport.answers["gone@x.test"] = REFUSE_RCPT    # 550 at RCPT for one recipient
    transport.calls_then(DOWN, TIMEOUT)               # the next two sends fail as a whole

What it hands to the caller goes through the same ``failure`` and ``Sent`` as the smarthost's,
so the tests see exactly the shapes the real transport produces.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from gateway.delivery.transport import Evidence, Outcome, Reply, Sent, Transaction, failure

ACCEPT = Reply(250, "2.1.5 Ok")
DEFER_RCPT = Reply(450, "4.2.1 Mailbox busy, try later")
REFUSE_RCPT = Reply(550, "5.1.1 No such user")
DATA_OK = Reply(250, "2.0.0 Ok: queued as FAKE")


@dataclass(frozen=True)
class Fail:
    """The whole transaction fails at ``stage`` (nothing is delivered)."""

    stage: str
    reply: Reply
    outcome: Outcome | None = None  # None: follows from the reply's code


DOWN = Fail(
    "connect",
    Reply(421, "cannot reach the upstream: [Errno 111] Connect call failed"),
    Outcome.UNREACHABLE,
)
TIMEOUT = Fail(
    "DATA", Reply(451, "upstream failed: Timed out waiting for server response"), Outcome.TIMED_OUT
)
MAIL_DEFERRED = Fail("MAIL", Reply(421, "4.3.2 Service shutting down"))
MAIL_REFUSED = Fail("MAIL", Reply(550, "5.7.1 Sender rejected"))
DATA_DEFERRED = Fail("DATA", Reply(452, "4.3.1 Insufficient system storage"))
DATA_REFUSED = Fail("DATA", Reply(554, "5.6.0 Message rejected"))


@dataclass
class Delivered:
    transaction: Transaction
    recipients: tuple[str, ...]  # those the fake upstream took


@dataclass
class FakeTransport:
    answers: dict[str, Reply] = field(default_factory=dict)  # RCPT reply per recipient
    script: deque[Fail | None] = field(default_factory=deque)  # per call; None: as usual
    attempts: list[Transaction] = field(default_factory=list)
    delivered: list[Delivered] = field(default_factory=list)
    closed: bool = False
    evidence: Evidence | None = None  # what a send says of how it left (None: says nothing)
    skipped: tuple[str, ...] = ()

    def calls_then(self, *steps: Fail | None) -> FakeTransport:
        self.script.extend(steps)
        return self

    @property
    def received(self) -> list[tuple[str, ...]]:
        """The recipients of each copy delivered, in order."""
        return [d.recipients for d in self.delivered]

    async def send(self, transaction: Transaction) -> Sent:
        self.attempts.append(transaction)
        step = self.script.popleft() if self.script else None
        if step is not None and step.stage in ("connect", "MAIL"):
            raise failure(step.reply, step.stage, step.outcome)
        sent = Sent()
        for recipient in transaction.recipients:
            reply = self.answers.get(recipient.address, ACCEPT)
            if reply.outcome is Outcome.ACCEPTED:
                sent.accepted.append(recipient.address)
            else:
                sent.refused[recipient.address] = reply
        if not sent.accepted:
            return sent
        if step is not None:
            raise failure(step.reply, step.stage, step.outcome)
        sent.reply = DATA_OK
        sent.evidence = self.evidence
        sent.skipped = self.skipped
        self.delivered.append(Delivered(transaction, tuple(sent.accepted)))
        return sent

    async def close(self) -> None:
        self.closed = True
