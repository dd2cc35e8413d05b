"""The store: held messages (encrypted), their metadata and state, the relay journal, the audit
trail, the outbox of notices, the MTA-STS policy cache, and accounts (users, the sign-in
throttle, web sessions).

One protocol per concern (``protocols``; ``accountstore`` for accounts), plain records
(``records``, ``assessment``), typed changes (``changes``) and queries (``queries``), so a
second backend implements a written vocabulary. ``sqlite.SqliteStore`` is the embedded
default (SQLite in WAL mode, sealed bodies in the database beside their rows);
``postgres.PgStore`` is the shared store of several nodes on one PostgreSQL database.
"""

from __future__ import annotations

from gateway.store.accountstore import AccountStore, SessionRecords, SignInFailures, UserRecords
from gateway.store.assessment import AssessmentRecord, DaneHostRecord, HoldFacts
from gateway.store.changes import Decide, DeliveryDone, DeliveryPending, Escalate, HoldChange
from gateway.store.probes import ProbeRecord
from gateway.store.protocols import (
    AuditTrail,
    DeliveryQueue,
    Holds,
    HoldStore,
    NoticeOutbox,
    PolicyCache,
    ProbeResults,
    RelayJournal,
)
from gateway.store.queries import AuditQuery, HoldOrder, HoldQuery
from gateway.store.queued import NewQueued, Queued, QueuedRecipient, RecipientState
from gateway.store.records import (
    DECIDED,
    AuditRecord,
    Consequences,
    HeldRecipient,
    Hold,
    NewHold,
    NewNotice,
    Notice,
    Status,
)

__all__ = [
    "DECIDED",
    "AccountStore",
    "AssessmentRecord",
    "AuditQuery",
    "AuditRecord",
    "AuditTrail",
    "Consequences",
    "DaneHostRecord",
    "Decide",
    "DeliveryDone",
    "DeliveryPending",
    "DeliveryQueue",
    "Escalate",
    "HeldRecipient",
    "Hold",
    "HoldChange",
    "HoldFacts",
    "HoldOrder",
    "HoldQuery",
    "HoldStore",
    "Holds",
    "NewHold",
    "NewNotice",
    "NewQueued",
    "Notice",
    "NoticeOutbox",
    "PolicyCache",
    "ProbeRecord",
    "ProbeResults",
    "Queued",
    "QueuedRecipient",
    "RecipientState",
    "RelayJournal",
    "SessionRecords",
    "SignInFailures",
    "Status",
    "UserRecords",
]
