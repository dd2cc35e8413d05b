"""The portal's listener in `gateway serve`: a port that is taken is said plainly, naming
[portal] listen, and mail keeps flowing without the portal."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from rig.gatewayproc import start_gateway
from rig.ports import LOOPBACK, free_port
from rig.rig import Rig
from rig.upstream import Upstream

pytestmark = pytest.mark.e2e


def test_a_taken_portal_port_is_named_and_mail_still_flows(rig: Rig, tmp_path: Path) -> None:
    port = free_port()
    upstream = Upstream().start()
    with socket.socket() as other:
        other.bind((LOOPBACK, port))
        other.listen()
        portal = {
            "enabled": True,
            "listen": f"{LOOPBACK}:{port}",
            "public_url": f"http://{LOOPBACK}:{port}",
        }
        gateway = start_gateway(rig, tmp_path, upstream, portal=portal)
        try:
            gateway.proc.wait_event("portal not started", timeout=20)
            assert "([portal] listen) is already in use" in gateway.proc.output()
            raw = b"From: a@school.test\r\nTo: b@school.test\r\nSubject: hi\r\n\r\nhello\r\n"
            assert gateway.send("a@school.test", ["b@school.test"], raw).code == 250
        finally:
            assert gateway.proc.stop() == 0
            upstream.close()
