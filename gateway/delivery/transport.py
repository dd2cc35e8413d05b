"""The seam between the gateway and whatever carries a message onward.

A ``Transport`` takes one SMTP transaction and says, per recipient, what the far side did with
it. Every upstream outcome maps to one ``Outcome``, in this module and nowhere else:

    accepted     2xx to RCPT and to DATA: the upstream took responsibility (RFC 5321 §6.1)
    refused      5xx: permanent, retrying cannot help
    deferred     4xx: temporary, a retry may succeed (RFC 5321 §4.2.1)
    unreachable  no connection, or it dropped before the upstream answered
    timed-out    the upstream did not answer in time

A transaction that fails as a whole (connect, MAIL, DATA) raises ``DeliveryFailed``
(``gateway.errors``), built by ``failure`` below; refusals at RCPT are per recipient, in
``Sent.refused``. Today's one implementation is the organisation's smarthost
(``smarthost.Smarthost``). Direct delivery to each recipient domain's MX hosts is the next:
another class with the same ``send`` and ``close``, chosen by the runtime.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from gateway.errors import DeliveryFailed


class Outcome(StrEnum):
    ACCEPTED = "accepted"
    REFUSED = "refused"
    DEFERRED = "deferred"
    UNREACHABLE = "unreachable"
    TIMED_OUT = "timed-out"

    @property
    def temporary(self) -> bool:
        return self not in (Outcome.ACCEPTED, Outcome.REFUSED)


@dataclass(frozen=True)
class Reply:
    """What the upstream answered (or what a transport stands in for a missing answer)."""

    code: int
    text: str

    @property
    def temporary(self) -> bool:
        return self.outcome.temporary

    @property
    def outcome(self) -> Outcome:
        # RFC 5321 §4.2.1: the first digit says it all; a reply outside 2xx-5xx is no
        # acceptance, and not a reason to give up either.
        if 200 <= self.code < 400:
            return Outcome.ACCEPTED
        return Outcome.REFUSED if 500 <= self.code < 600 else Outcome.DEFERRED

    def __str__(self) -> str:
        return f"{self.code} {self.text}"


@dataclass(frozen=True)
class Recipient:
    address: str
    options: tuple[str, ...] = ()  # NOTIFY=, ORCPT= (RFC 3461)


@dataclass(frozen=True)
class Transaction:
    sender: str  # "" for the null reverse-path
    recipients: tuple[Recipient, ...]
    data: bytes
    mail_options: tuple[str, ...] = ()  # RET=, ENVID= (RFC 3461), BODY=, SMTPUTF8
    smtputf8: bool = False


@dataclass
class Sent:
    """A transaction that got past MAIL: who was accepted, who was refused at RCPT (4xx and
    5xx kept apart by their code), and the upstream's reply to DATA (None if no RCPT was
    accepted, so no DATA was sent)."""

    accepted: list[str] = field(default_factory=list)
    refused: dict[str, Reply] = field(default_factory=dict)
    reply: Reply | None = None


class Transport(Protocol):
    async def send(self, transaction: Transaction) -> Sent:
        """Run one transaction; raise ``DeliveryFailed`` when it fails as a whole."""
        ...

    async def close(self) -> None: ...


def failure(reply: Reply, stage: str, outcome: Outcome | None = None) -> DeliveryFailed:
    """The exception for a transaction that failed at ``stage``; the outcome follows from the
    reply's code unless the transport knows better (no connection, a timeout)."""
    outcome = outcome or reply.outcome
    if outcome is Outcome.ACCEPTED:  # a failure is never an acceptance, whatever the code
        outcome = Outcome.DEFERRED
    return DeliveryFailed(reply.code, reply.text, stage, outcome.value)


def failure_reply(exc: DeliveryFailed) -> Reply:
    return Reply(exc.code, exc.text)
