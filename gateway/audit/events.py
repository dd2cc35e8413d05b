"""The audit trail: one function per business event, each returning the record to append.

Records hold metadata only — addresses, domains, reasons, reviewers, rationales — never a
message body or subject. The store appends them in the same transaction as the change they
describe, and chains them (``core.auditchain``) so that an edited or deleted entry shows.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from typing import Any

from gateway.core.auditchain import Entry
from gateway.core.display import visible
from gateway.core.timefmt import iso_utc
from gateway.store import AuditRecord, Hold

GATEWAY = "gateway"
MAX_ACTOR = 200
MAX_FILENAME = 200


def actor(by: str) -> str:
    """Who acted, as the trail records them: whitespace collapsed, at most ``MAX_ACTOR``
    characters; "" when nobody was named, which callers refuse."""
    return " ".join(by.split())[:MAX_ACTOR]


def relayed(
    queue_id: str,
    message_id: str,
    sender: str,
    recipients: Sequence[str],
    findings: Sequence[str],
    facts: Mapping[str, Any],
) -> AuditRecord:
    """Flagged mail relayed at once, with the facts that made each recipient domain secure."""
    return AuditRecord(
        "relayed",
        "",
        GATEWAY,
        {
            "queue_id": queue_id,
            "message_id": message_id,
            "sender": sender,
            "recipients": list(recipients),
            "findings": list(findings),
            "facts": dict(facts),
        },
    )


def received(
    queue_id: str,
    message_id: str,
    sender: str,
    recipients: Sequence[str],
    client: str,
    findings: Sequence[str],
) -> AuditRecord:
    """Flagged mail arrived (unflagged mail is logged, not audited): the first entry of its
    path, committed with the first durable thing done with it (a hold, or a relay)."""
    return AuditRecord(
        "received",
        "",
        GATEWAY,
        {
            "queue_id": queue_id,
            "message_id": message_id,
            "sender": sender,
            "recipients": list(recipients),
            "client": client,
            "findings": list(findings),
        },
    )


def delivered(hold_id: str, proof: Mapping[str, Any]) -> AuditRecord:
    """How one recipient's copy of flagged mail left: the proof of delivery. ``proof`` is
    built by ``gateway.delivery.deliver`` (route, host, address, port, TLS, what
    authenticated the peer, its reply, the time, the MX hosts passed over)."""
    return AuditRecord("delivered", hold_id, GATEWAY, dict(proof))


def held(queue_id: str, hold: Hold | None = None, **details: Any) -> AuditRecord:
    """Held for review, with each recipient's reasons. ``hold`` is None while the store has
    still to give it an id; the store fills it in."""
    data = {"queue_id": queue_id, **details}
    return AuditRecord("held", hold.id if hold else "", GATEWAY, data)


def hold_details(
    sender: str,
    message_id: str,
    recipients: Sequence[tuple[str, Sequence[str]]],
    findings: Sequence[str],
) -> dict[str, Any]:
    return {
        "sender": sender,
        "message_id": message_id,
        "recipients": {address: list(reasons) for address, reasons in recipients},
        "findings": list(findings),
    }


def release_requested(hold: Hold, by: str, rationale: str) -> AuditRecord:
    return AuditRecord("release-requested", hold.id, by, {"rationale": rationale})


def released(
    hold: Hold, by: str, rationale: str, delivered: Sequence[str], refused: Mapping[str, str]
) -> AuditRecord:
    return AuditRecord(
        "released",
        hold.id,
        by,
        {"rationale": rationale, "delivered": list(delivered), "refused": dict(refused)},
    )


def rejected(hold: Hold, by: str, reason: str) -> AuditRecord:
    return AuditRecord("rejected", hold.id, by, {"reason": reason})


def expired(hold: Hold, after_seconds: float) -> AuditRecord:
    return AuditRecord("expired", hold.id, GATEWAY, {"after_hours": round(after_seconds / 3600, 2)})


def escalated(hold: Hold, contacts: Sequence[str], waited_seconds: float) -> AuditRecord:
    return AuditRecord(
        "escalated",
        hold.id,
        GATEWAY,
        {"contacts": list(contacts), "waited_hours": round(waited_seconds / 3600, 2)},
    )


def purged(hold: Hold, by: str) -> AuditRecord:
    return AuditRecord("purged", hold.id, by, {"status": hold.status.value})


def notice_sent(kind: str, hold_id: str, recipients: Sequence[str]) -> AuditRecord:
    return AuditRecord("notice-sent", hold_id, GATEWAY, {"kind": kind, "to": list(recipients)})


def viewed(hold: Hold, by: str) -> AuditRecord:
    """A reviewer opened the held message: who saw it is part of the record."""
    return AuditRecord("viewed", hold.id, by, {})


# --- Reading the trail ------------------------------------------------------------------------


EXPORT_FIELDS = ("seq", "time", "event", "hold_id", "actor", "data", "hash")


def entry_json(entry: Entry) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "time": _iso(entry.at),
        "event": entry.event,
        "hold_id": entry.hold_id,
        "actor": entry.actor,
        "data": dict(entry.data),
        "prev": entry.prev,
        "hash": entry.hash,
    }


def export(entries: Sequence[Entry], fmt: str) -> str:
    if fmt == "json":
        return json.dumps([entry_json(e) for e in entries], indent=2, ensure_ascii=False) + "\n"
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(EXPORT_FIELDS)
    for e in entries:
        data = json.dumps(dict(e.data), sort_keys=True, ensure_ascii=False)
        writer.writerow([e.seq, _iso(e.at), e.event, e.hold_id, e.actor, data, e.hash])
    return out.getvalue()


def _iso(timestamp: float) -> str:
    return iso_utc(timestamp)


# --- The review web UI: accounts, sessions, downloads -------------------------------------------
# Account events carry no hold id. A failed sign-in names the account only when it exists: what
# someone typed into the name field may be a password, and the trail keeps it for good.

UNKNOWN_ACCOUNT = "(unknown account)"


def signed_in(user: str, client: str) -> AuditRecord:
    return AuditRecord("signed-in", "", user, {"client": client})


def sign_in_failed(user: str, client: str, why: str) -> AuditRecord:
    """``why``: wrong-password, unknown-account, disabled, throttled. ``user`` is empty when
    no such account exists."""
    return AuditRecord(
        "sign-in-failed", "", user or UNKNOWN_ACCOUNT, {"client": client, "why": why}
    )


def signed_out(user: str, client: str) -> AuditRecord:
    return AuditRecord("signed-out", "", user, {"client": client})


def user_added(user: str, role: str, by: str) -> AuditRecord:
    return AuditRecord("user-added", "", by, {"user": user, "role": role})


def password_changed(user: str, by: str) -> AuditRecord:
    return AuditRecord("password-changed", "", by, {"user": user})


def user_disabled(user: str, by: str) -> AuditRecord:
    return AuditRecord("user-disabled", "", by, {"user": user})


def user_enabled(user: str, by: str) -> AuditRecord:
    return AuditRecord("user-enabled", "", by, {"user": user})


def attachment_downloaded(hold: Hold, by: str, index: int, size: int, filename: str) -> AuditRecord:
    """A reviewer downloaded an attachment: which one by its name, its position and size.
    The name is kept as the hold page shows it (``core.display.visible``: control and bidi
    characters written as escapes, so ``\u202egpj.exe`` is recorded as sent), at most
    ``MAX_FILENAME`` characters. The trail is the reviewers' record, read by reviewers and
    admins; the log line keeps the position alone, since a file name can name a child."""
    filename = visible(filename)[:MAX_FILENAME]
    return AuditRecord(
        "attachment-downloaded",
        hold.id,
        by,
        {"attachment": index, "filename": filename, "size": size},
    )
