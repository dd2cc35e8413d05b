"""What SIGHUP (and `gateway reload`) re-reads in a running `gateway serve` or `gateway web`:
the allowlist files of ``[allowlist] paths``, found again by their globs.

A reload is all or nothing. Where a start-up leaves a bad entry out (and holds more mail), a
reload that meets any problem (a file that is not valid TOML, an entry that does not parse, a
file that cannot be read) keeps the whole previous list in force: the operator meant to change
the list, and half a change is neither the old list nor the new one. The log names each file and
line to fix; the next SIGHUP tries again.

The new list replaces the old one as one reference (``Posture.use``). A message decides with
the list in force when its recipients' assessment starts (at the end of DATA, where the verdict
is made), so a session in progress sends its next message with the new list, and a message
being decided finishes with the list it started with. Nothing about a session is closed or
dropped.
"""

from __future__ import annotations

import time
from typing import Any

from gateway.config.settings import Settings
from gateway.posture.allowlists import InForce
from gateway.posture.assessment import Posture
from gateway.runtime.parts import load_allowlist


def reload_allowlist(settings: Settings, posture: Posture, log: Any) -> bool:
    """Read the allowlist files again and decide with them from now on; False (and the
    previous list still in force) when any file has a problem."""
    loaded = load_allowlist(settings)
    if loaded.problems:
        kept = posture.in_force
        for problem in loaded.problems:
            log.error(
                "allowlist reload failed",
                file=problem.file,
                line=problem.line,
                problem=problem.message,
                kept_files=[str(f) for f in kept.files],
                kept_entries=len(kept.allowlist.entries),
            )
        return False
    posture.use(InForce(loaded.allowlist, loaded.files, time.time()))
    log.info(
        "allowlist reloaded",
        files=[str(f) for f in loaded.files],
        entries=len(loaded.allowlist.entries),
    )
    return True
