"""What the delivery queue keeps: messages the gateway said 250 to and delivers itself, to the
recipients' MX hosts ([delivery] direct), with each recipient's state.

Plain frozen values, the same for every backend. The body is kept apart, encrypted like a
held message's; a finished entry keeps its row (for `gateway queue show` and the trail) and
loses its body.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from gateway.store.assessment import HoldFacts


class RecipientState(StrEnum):
    PENDING = "pending"  # not yet taken by its MX host; retried until give_up_after
    DELIVERED = "delivered"  # an MX host took it (RFC 5321 §6.1)
    FAILED = "failed"  # refused for good, or given up (unflagged): the sender was told
    HELD = "held"  # flagged and given up: a hold for review took it over
    PURGED = "purged"  # removed by an operator: the sender was told


@dataclass(frozen=True)
class QueuedRecipient:
    address: str
    domain: str
    options: tuple[str, ...] = ()  # RCPT parameters to pass on (NOTIFY, ORCPT)
    state: RecipientState = RecipientState.PENDING
    reply: str = ""  # the last answer or error for this recipient
    stage: str = ""  # where the last failed attempt failed: tls, connect, RCPT, DATA, ...
    hosts: tuple[str, ...] = ()  # a line per MX host of the last failed attempt
    done_at: float | None = None
    # Delivered flagged mail: how its copy left (``deliver.Report.proof``), for the sender's
    # confirmation once the entry completes ([notify] confirm_delivery). Metadata only.
    proof: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NewQueued:
    """What the filter hands the queue; the store gives it an id and a time."""

    key: str  # idempotency key: an MTA retry of the same message maps to the same entry
    sender: str
    recipients: tuple[QueuedRecipient, ...]
    mail_options: tuple[str, ...]
    message: bytes
    client: str
    helo: str
    protocol: str  # for the Received: line (RFC 3848)
    message_id: str
    findings: tuple[str, ...] = ()
    facts: HoldFacts = field(default_factory=HoldFacts)  # the verdicts' facts, for a hold
    subject: str = ""  # kept only when notices may show it ([notify] include_subject)
    summary: str = ""  # the X-Safeguarding-Gateway line
    smtputf8: bool = False
    flagged: bool = False
    requiretls: bool = False  # the client asked for RFC 8689 REQUIRETLS
    # When the MTA in front named its client (XFORWARD): the hold's "sent from" (the filter's
    # ``client_text``), and the Received: field's client name and comment, as a relayed copy
    # has them. "" for a client that spoke for itself: ``client`` and ``helo`` say it all.
    sent_from: str = ""
    client_name: str = ""
    trace_comment: str = ""


@dataclass(frozen=True)
class Queued:
    id: str
    key: str
    created_at: float
    sender: str
    recipients: tuple[QueuedRecipient, ...]
    mail_options: tuple[str, ...]
    size: int
    client: str
    helo: str
    protocol: str
    message_id: str
    findings: tuple[str, ...] = ()
    facts: HoldFacts = field(default_factory=HoldFacts)
    subject: str = ""
    summary: str = ""
    smtputf8: bool = False
    flagged: bool = False
    requiretls: bool = False
    sent_from: str = ""
    client_name: str = ""
    trace_comment: str = ""
    attempts: int = 0
    next_at: float = 0.0
    last_error: str = ""
    lease_until: float | None = None  # claimed for delivery until then
    lease_by: str = ""  # by which process (host:pid)
    done_at: float | None = None  # every recipient has its outcome

    @property
    def pending(self) -> tuple[QueuedRecipient, ...]:
        return tuple(r for r in self.recipients if r.state is RecipientState.PENDING)
