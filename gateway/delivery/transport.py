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
``Sent.refused``. Two implementations: the organisation's smarthost (``smarthost.Smarthost``)
and direct delivery to a recipient domain's MX hosts (``mx.MxTransport``), chosen per message
by the runtime.

What a transport learned of how the copy left (host, address, TLS, what authenticated the
peer) comes back as ``Evidence``: the audit trail's proof of delivery (TRANSPORT-SECURITY.md,
"Delivery").
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


class PeerAuth(StrEnum):
    """What authenticated the peer a copy was handed to."""

    DANE_EE = "dane-ee"  # RFC 7672 §3.1.1: the leaf matched a DANE-EE(3) TLSA record
    DANE_TA = "dane-ta"  # RFC 7672 §3.1.2: the chain matched a DANE-TA(2) record, name checked
    MTA_STS = "mta-sts-webpki"  # RFC 8461 §4.2: WebPKI chain naming an MX host of the policy
    SMARTHOST = "smarthost-verified"  # the smarthost's certificate verified for its name
    NONE = "none"  # plaintext, or TLS without an authenticated peer


@dataclass(frozen=True)
class Evidence:
    """How one copy left: where to, over what, and who vouched for the peer."""

    host: str  # the MX host's name, or the smarthost's
    address: str  # the IP address dialled
    port: int
    tls_version: str = ""  # "TLSv1.3"; empty in plaintext
    cipher: str = ""
    authenticated: PeerAuth = PeerAuth.NONE
    at: float = 0.0  # when the peer answered DATA (Unix time)

    def describe(self) -> str:
        """One line for people: "mx1.partner.test [192.0.2.1] over TLSv1.3, verified by
        mta-sts-webpki"."""
        where = f"{self.host} [{self.address}]"
        if not self.tls_version:
            return f"{where} without TLS"
        how = f"verified by {self.authenticated.value}"
        if self.authenticated is PeerAuth.NONE:
            how = "certificate not verified"
        return f"{where} over {self.tls_version} ({self.cipher}), {how}"


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
    # Flagged mail: a direct transport delivers only over TLS the recipient domain's DANE or
    # MTA-STS policy authenticates; the smarthost adds REQUIRETLS per [relay] requiretls.
    flagged: bool = False
    # The client asked for RFC 8689 REQUIRETLS: the next hop must be authenticated TLS and
    # must itself advertise REQUIRETLS, else 5.7.30.
    requiretls: bool = False
    # Lines sent before ``data`` (the gateway's trace fields), kept apart so that a large
    # message is not copied to prepend them; ``message`` is the whole text.
    prefix: bytes = b""

    @property
    def message(self) -> bytes:
        """The text the next hop receives: ``prefix`` then ``data`` (a copy; for tests and
        for anything that needs it in one piece)."""
        return self.prefix + self.data if self.prefix else self.data


@dataclass
class Sent:
    """A transaction that got past MAIL: who was accepted, who was refused at RCPT (4xx and
    5xx kept apart by their code), and the upstream's reply to DATA (None if no RCPT was
    accepted, so no DATA was sent)."""

    accepted: list[str] = field(default_factory=list)
    refused: dict[str, Reply] = field(default_factory=dict)
    reply: Reply | None = None
    evidence: Evidence | None = None  # how the connection that carried it was made
    # MX hosts tried and passed over before this one, a line each ("host [ip]: why").
    skipped: tuple[str, ...] = ()


class Transport(Protocol):
    async def send(self, transaction: Transaction) -> Sent:
        """Run one transaction; raise ``DeliveryFailed`` when it fails as a whole."""
        ...

    async def close(self) -> None: ...


def failure(
    reply: Reply, stage: str, outcome: Outcome | None = None, hosts: tuple[str, ...] = ()
) -> DeliveryFailed:
    """The exception for a transaction that failed at ``stage``; the outcome follows from the
    reply's code unless the transport knows better (no connection, a timeout). ``hosts``: a
    line per MX host tried and why it failed."""
    outcome = outcome or reply.outcome
    if outcome is Outcome.ACCEPTED:  # a failure is never an acceptance, whatever the code
        outcome = Outcome.DEFERRED
    return DeliveryFailed(reply.code, reply.text, stage, outcome.value, hosts)


def failure_reply(exc: DeliveryFailed) -> Reply:
    return Reply(exc.code, exc.text)
