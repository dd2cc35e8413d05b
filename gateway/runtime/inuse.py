"""A port that is taken, said in one line that names the setting and what to stop.

The operating system's own words ("[Errno 98] error while attempting to bind on address
('127.0.0.1', 10025): address already in use") name neither: the usual cause is a gateway
still running in another terminal (`make run` before `make demo`'s gateway).
"""

from __future__ import annotations

import errno

from gateway.config.values import HostPort


class PortInUse(OSError):
    def __init__(self, listen: HostPort, key: str) -> None:
        super().__init__(errno.EADDRINUSE, "address already in use")
        self.listen = listen
        self.key = key

    def __str__(self) -> str:
        return (
            f"{self.listen} ([{self.key.replace('.', '] ')}) is already in use: stop the program"
            " listening there first (another gateway: `make run`, or an earlier `gateway serve`?)"
        )


def explained(exc: OSError, listen: HostPort, key: str) -> OSError:
    """``exc``, or a PortInUse saying which setting's address is taken."""
    return PortInUse(listen, key) if exc.errno == errno.EADDRINUSE else exc
