"""The open-files limit, raised at start to the most the service manager allows.

Every SMTP session holds its client's socket and, while it relays, one to the smarthost; DNS,
the MTA-STS fetches, the store and the web UI hold more. Docker (since 25) and systemd start
services with a soft RLIMIT_NOFILE of 1024 and a far higher hard limit, expecting a daemon
that needs more to raise its own soft limit (setrlimit(2); systemd.exec(5), LimitNOFILE=).
Nothing is lost when it cannot: the gateway then runs with the limit it was given.
"""

from __future__ import annotations

import resource
from typing import Any

# The kernel's default fs.nr_open: the most a soft limit may be when the hard one is unlimited.
NR_OPEN = 1_048_576


def raise_open_files(log: Any) -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = NR_OPEN if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError) as exc:
            log.warning("open files limit not raised", soft=soft, hard=hard, error=str(exc))
            return soft
        log.info("open files limit raised", before=soft, now=wanted)
        return wanted
    return soft
