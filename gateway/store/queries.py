"""What a reader asks of the store: which holds, which audit entries, in what order, how many.

Every backend filters, sorts and pages in its query, so a page reads what it shows and no more.
Times are absolute (seconds since the epoch): the caller turns "older than 4 hours" into a
bound with its own clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from gateway.store.records import Status


class HoldOrder(StrEnum):
    OLDEST = "oldest"
    NEWEST = "newest"
    SENDER = "sender"  # case-insensitive, then oldest first
    DOMAIN = "domain"  # the first held recipient's domain, then oldest first
    REASON = "reason"  # the first reason, then oldest first


@dataclass(frozen=True)
class HoldQuery:
    statuses: frozenset[Status] = frozenset()  # empty: any status
    sender: str = ""  # part of the sender's address, any case
    recipient_domain: str = ""  # a held recipient's domain, exactly (A-labels, lower case)
    reason: str = ""  # a held recipient's reason code
    created_before: float | None = None  # created at or before
    created_after: float | None = None  # created at or after
    decided_before: float | None = None  # decided (or, undecided, created) at or before
    decided_after: float | None = None  # decided at or after
    escalated: bool | None = None
    purged: bool | None = None
    order: HoldOrder = HoldOrder.OLDEST
    limit: int | None = None  # None: every match (the sweep); pages give a limit
    offset: int = 0

    @classmethod
    def of(cls, *statuses: Status) -> HoldQuery:
        return cls(statuses=frozenset(statuses))


@dataclass(frozen=True)
class AuditQuery:
    """Audit entries, newest first unless ``oldest_first``."""

    hold_id: str = ""
    event: str = ""
    actor: str = ""  # part of the actor's name, any case
    words: tuple[str, ...] = ()  # each must occur (any case) in the event, hold, actor or data
    since: float | None = None  # at or after
    oldest_first: bool = False
    limit: int | None = None
    offset: int = 0
