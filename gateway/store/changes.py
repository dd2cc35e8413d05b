"""The changes a hold may go through, one type per business step.

A backend applies each as one compare-and-set on the hold's status (``Holds.update``); the
fields each one writes are listed here, so a second backend has nothing to guess.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from gateway.store.links import NewLink
from gateway.store.records import Status


@dataclass(frozen=True)
class Decide:
    """A decision: released (to be delivered), rejected, or expired.
    Writes status, decided_at, decided_by, decision."""

    status: Status
    at: float
    by: str
    text: str = ""  # the rationale of a release, the reason of a reject


@dataclass(frozen=True)
class Escalate:
    """Reviewers (and escalation contacts) were alerted. Writes escalated_at."""

    at: float


@dataclass(frozen=True)
class DeliveryPending:
    """A release delivery stopped short for now: the error, the recipients the upstream has
    taken so far (None: unchanged), and the claim given up so the next try may start at once.
    Writes last_error, delivered (when given), attempt_at = none."""

    error: str
    delivered: tuple[str, ...] | None = None


@dataclass(frozen=True)
class DeliveryDone:
    """A release delivery finished: every recipient was taken or refused for good.
    Writes status = released, delivered, refused, last_error = '', attempt_at = none."""

    delivered: tuple[str, ...]
    refused: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SendLinks:
    """Sent by secure link: the decision, and one link per held recipient, made in the same
    transaction. Writes status = linked, decided_at, decided_by, decision; inserts the links
    (created_at = at, created_by = by)."""

    at: float
    by: str
    text: str  # the rationale, as for a release
    links: tuple[NewLink, ...]


HoldChange = Decide | Escalate | DeliveryPending | DeliveryDone | SendLinks
