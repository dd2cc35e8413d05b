"""A message's path, read back from the audit trail and the holds: arrival, each recipient's
verdict, hold, decision and how each copy left. One reading for `gateway trace` and the web
tracking page, and each entry read as its sentence (``words``).

Only flagged mail is in the trail (``received`` is its first entry); unflagged mail is logged,
not audited, so a trace of it finds nothing. Flagged mail the gateway delivers itself
([delivery] direct) has a queue entry: its id names the trail's ``queued``, ``queue-*`` and
``delivered`` entries, and the entry itself gives the Message-ID they share (``_related``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.audit.proofwords import delivered_words
from gateway.audit.words import sentence
from gateway.core.auditchain import Entry
from gateway.store import AuditQuery, Hold, Queued

# How many entries one message's path may read: a trace is bounded like every page.
MAX_ENTRIES = 500


class TrailReader(Protocol):
    async def audit_query(self, query: AuditQuery) -> Sequence[Entry]: ...

    async def get(self, hold_id: str) -> Hold | None: ...

    async def queued(self, queue_id: str) -> Queued | None: ...


@dataclass(frozen=True)
class Step:
    at: float
    event: str
    text: str  # one sentence for people
    hold_id: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)  # the details, folded away


@dataclass(frozen=True)
class MessagePath:
    message_id: str
    sender: str
    steps: tuple[Step, ...]
    outcomes: Mapping[str, str]  # recipient -> final outcome, in words
    holds: tuple[Hold, ...] = ()
    queue_ids: tuple[str, ...] = ()

    def subject(self) -> str:
        """The subject, if a hold kept it (only under ``[notify] include_subject``)."""
        return next((h.subject for h in self.holds if h.subject), "")


def bare_id(text: str) -> str:
    """A Message-ID with or without its angle brackets, or a queue or hold id, as searched."""
    text = text.strip()
    return text[1:-1].strip() if text.startswith("<") and text.endswith(">") else text


async def find(reader: TrailReader, ident: str) -> MessagePath | None:
    """The path of the message ``ident`` names (a queue id, hold id or Message-ID), or None
    when neither the trail nor the holds know it."""
    wanted = bare_id(ident)
    if not wanted:
        return None
    entries: dict[int, Entry] = {}
    holds: dict[str, Hold] = {}
    names = {wanted}
    seen: set[str] = set()
    while names - seen and len(entries) < MAX_ENTRIES:
        name = sorted(names - seen)[0]
        seen.add(name)
        for entry in await _related(reader, name, holds):
            entries[entry.seq] = entry
            names |= _names(entry)
    if not entries and not holds:
        return None
    return _path(sorted(entries.values(), key=lambda e: e.seq), tuple(holds.values()))


async def _related(reader: TrailReader, name: str, holds: dict[str, Hold]) -> list[Entry]:
    """The entries that name ``name`` as their hold, queue id or Message-ID."""
    hold = await reader.get(name)
    if hold is not None:
        holds[hold.id] = hold
    found = await reader.audit_query(
        AuditQuery(words=(name.lower(),), oldest_first=True, limit=MAX_ENTRIES)
    )
    related = [e for e in found if name in _names(e)]
    entry = await reader.queued(name)
    if entry is not None and entry.message_id and entry.flagged:
        # The queue entry names its message: its arrival and verdicts are found through that.
        related += await _related(reader, bare_id(entry.message_id), holds)
    return related


def _names(entry: Entry) -> set[str]:
    names = {entry.hold_id} if entry.hold_id else set()
    for key in ("queue_id", "message_id"):
        value = entry.data.get(key)
        if isinstance(value, str) and value:
            names.add(bare_id(value))
    return names


def _path(entries: Sequence[Entry], holds: tuple[Hold, ...]) -> MessagePath:
    steps = tuple(
        Step(e.at, e.event, sentence(e.event, e.actor, e.hold_id, e.data), e.hold_id, e.data)
        for e in entries
    )
    first = next((e.data for e in entries if "sender" in e.data), {})
    message_id = str(first.get("message_id") or next((h.message_id for h in holds), ""))
    sender = str(first.get("sender") or next((h.sender for h in holds), ""))
    queue_ids = tuple(
        dict.fromkeys(str(e.data["queue_id"]) for e in entries if "queue_id" in e.data)
    )
    return MessagePath(message_id, sender, steps, _outcomes(entries, holds), holds, queue_ids)


def _outcomes(entries: Sequence[Entry], holds: Sequence[Hold]) -> dict[str, str]:
    """Each recipient's latest outcome, in the order the trail met them."""
    outcomes: dict[str, str] = {}
    for e in entries:
        data = e.data
        if e.event == "received":
            for address in data.get("recipients", ()):
                outcomes.setdefault(address, "received; no outcome recorded yet")
        elif e.event == "relayed":
            for address in data.get("recipients", ()):
                outcomes[address] = "relayed"
        elif e.event == "held":
            for address in dict(data.get("recipients") or {}):
                outcomes[address] = f"held for review as {e.hold_id}"
        elif e.event == "delivered":
            outcomes[str(data.get("recipient"))] = "d" + delivered_words(data)[1:]
        elif e.event == "released":
            for address, reply in dict(data.get("refused") or {}).items():
                outcomes[address] = f"refused after release: {reply}"
        elif e.event == "queue-failed":
            for address, reply in dict(data.get("recipients") or {}).items():
                outcomes[address] = f"not delivered: {reply}"
        elif e.event == "queue-purged":
            for address in data.get("recipients", ()):
                outcomes[address] = f"taken out of the queue by {e.actor}: {data.get('reason', '')}"
        elif e.event in ("rejected", "expired"):
            hold = next((h for h in holds if h.id == e.hold_id), None)
            for r in hold.recipients if hold else ():
                outcomes[r.address] = f"not sent: {sentence(e.event, e.actor, '', data).lower()}"
    return outcomes
