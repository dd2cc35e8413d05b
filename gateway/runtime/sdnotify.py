"""Tell systemd how the service is doing, for ``Type=notify`` (deploy/gateway.service):
``READY=1`` once the leader listens, so that `systemctl start` returns (and units ordered after
it start) only when mail can be accepted; ``STOPPING=1`` when it begins to stop.

The protocol is one datagram of ``KEY=VALUE`` lines to the AF_UNIX socket named in
``$NOTIFY_SOCKET``; a name starting with ``@`` is in the abstract namespace (sd_notify(3)).
Without the variable (not under systemd) this does nothing. A message that cannot be sent is
not a reason to stop serving mail: it is ignored, and systemd's start timeout reports it.
"""

from __future__ import annotations

import os
import socket


def notify(state: str) -> bool:
    """Send ``state`` (e.g. "READY=1"); True if it was sent."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address or address[0] not in "@/":
        return False
    if address[0] == "@":
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(state.encode(), address)
    except OSError:
        return False
    return True
