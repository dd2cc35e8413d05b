"""The log line that witnesses the audit chain's head after each write to the trail.

The log is a witness kept outside the database: a copy of it shows if the newest entries were
ever cut off (``gateway audit verify --head SEQ:HASH``). The head after a write vouches for
every entry before it (each entry's MAC covers its predecessor's), so one line per write, with
the new head, witnesses as much as a line per entry did, at a fraction of the cost: a message
held in part and relayed in part appends six or more entries in two writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gateway.core.auditchain import Entry


def witness_appended(log: Any, entries: Sequence[Entry]) -> None:
    """One ``audit appended`` line for the entries one write appended (none: no line):
    the head (``seq``, ``head``), how many entries, their events and the holds they name,
    comma-separated in the order of the trail (one entry: its event and hold, as they are)."""
    if not entries:
        return
    last = entries[-1]
    log.info(
        "audit appended",
        seq=last.seq,
        audit_event=",".join(e.event for e in entries),
        hold_id=",".join(dict.fromkeys(e.hold_id for e in entries if e.hold_id)),
        head=last.hash,
        entries=len(entries),
    )
