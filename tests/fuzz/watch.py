"""What the fuzzer checks on the running gateway between steps: its process, its log, what
reached the upstream, the hold store and the outbox."""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass

from rig.gatewayproc import Gateway

# Log levels that mean the gateway met something it did not expect.
BAD_LEVELS = ("error", "critical", "exception")


@dataclass(frozen=True)
class Counts:
    """How many client messages the upstream took and how many holds the store has."""

    relayed: int
    holds: int


class GatewayWatch:
    """Reads the gateway's log from where it last stopped, and its store."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self._offsets: dict[str, int] = {}

    def _new_text(self, suffix: str) -> str:
        proc = self.gateway.proc
        path = proc.logdir / f"gateway-{proc.runs}.{suffix}"
        key = str(path)
        with path.open("rb") as file:
            file.seek(self._offsets.get(key, 0))
            data = file.read()
        # Only whole lines: the rest is read next time.
        end = data.rfind(b"\n") + 1
        self._offsets[key] = self._offsets.get(key, 0) + end
        return data[:end].decode("utf-8", "replace")

    def problems(self) -> list[str]:
        """Log lines since the last call that show an unexpected error, a traceback, or a
        process that is no longer running."""
        found = []
        if not self.gateway.proc.running:
            found.append("gateway serve is no longer running")
        err = self._new_text("stderr")
        if "Traceback" in err:
            found.append(f"traceback on stderr:\n{err}")
        for line in self._new_text("stdout").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                found.append(f"a log line that is not JSON: {line!r}")
                continue
            if "Traceback" in line or entry.get("level") in BAD_LEVELS or "exception" in entry:
                found.append(f"an error in the log: {line}")
        return found

    def counts(self) -> Counts:
        return Counts(len(self.gateway.relayed()), len(self.holds()))

    def holds(self) -> list[tuple[str, list[str]]]:
        """Every hold: its id and recipients."""
        rows = self._query("SELECT id, recipients FROM holds")
        return [(r[0], [x["address"] for x in json.loads(r[1])]) for r in rows]

    def stuck_notices(self, timeout: float = 20.0) -> list[tuple[str, str, str]]:
        """Notices still unsent after `timeout` that the outbox means to send (a permanent
        refusal is kept for the operator with next_at = inf: not stuck, and not expected
        here, since the fuzz upstream takes every notice). Waits for the outbox to drain."""
        deadline = time.monotonic() + timeout
        while True:
            rows = self._query("SELECT kind, hold_id, last_error FROM outbox WHERE sent_at IS NULL")
            if not rows or time.monotonic() > deadline:
                return [(str(r[0]), str(r[1]), str(r[2])) for r in rows]
            time.sleep(0.1)

    def _query(self, sql: str) -> list[tuple[object, ...]]:
        if not self.gateway.held_db.exists():
            return []
        db = sqlite3.connect(self.gateway.held_db, timeout=10)
        try:
            return db.execute(sql).fetchall()
        finally:
            db.close()
