"""`gateway serve` with `[delivery] direct = "flagged"`: flagged mail is queued (250 once it is
on disk), delivered by the gateway itself to the recipient domain's MX host over TLS the
domain's MTA-STS policy vouches for, retried while the MX is down, delivered once however the
gateway is killed, and seen and handled with `gateway queue`.

secure.test (rig/zones.py) publishes an enforce policy naming mx1 and mx2.secure.test, both at
127.0.0.1; one MX server on the gateway's mx_port with a rig-CA certificate for both names
plays them.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from rig import Rig
from rig.cli import GatewayRunner
from rig.gatewayproc import Gateway, is_notice, message, raw_session, readable
from rig.mx import start_mx
from rig.ports import free_port
from rig.upstream import Upstream

pytestmark = pytest.mark.e2e

SENDER = "head@school.test"
TO = "colleague@secure.test"
QUEUED = re.compile(r"queued as ([0-9a-f]+)")


class Mx:
    """The secure.test MX host on its port: started and stopped at will."""

    def __init__(self, rig: Rig) -> None:
        self.port = free_port()
        self._leaf = rig.ca.issue(("mx1.secure.test", "mx2.secure.test"), stem="mx-queue")
        self._rig = rig
        self.server: Upstream | None = None

    def start(self, data_delay: float = 0.0) -> Upstream:
        self.server = start_mx(
            self._rig.ca, "mx1.secure.test", "127.0.0.1", self.port, leaf=self._leaf
        )
        self.server.data_delay = data_delay
        return self.server

    def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None


@pytest.fixture
def mx(rig: Rig) -> Iterator[Mx]:
    host = Mx(rig)
    try:
        yield host
    finally:
        host.stop()


@pytest.fixture
def direct(serve: Callable[..., Gateway], rig: Rig, mx: Mx) -> Callable[..., Gateway]:
    def start(
        data_dir: Path | None = None,
        retry_after: str = "1s",
        delivery_more: Mapping[str, object] | None = None,
        **more: Mapping[str, object],
    ) -> Gateway:
        return serve(
            data_dir,
            **more,
            delivery={
                "direct": "flagged",
                "allow_private_addresses": True,
                "mx_port": mx.port,
                "ca_file": str(rig.ca.ca_file),
                "retry_after": retry_after,
                "timeout": "5s",
                **(delivery_more or {}),
            },
        )

    return start


def queue_id(text: str) -> str:
    found = QUEUED.search(text)
    assert found, f"the reply names no queue entry: {text!r}"
    return found.group(1)


def test_flagged_mail_is_delivered_to_the_mx_over_verified_tls(
    direct: Callable[..., Gateway], mx: Mx
) -> None:
    server = mx.start()
    gw = direct()
    data = message(to=[TO])
    reply = gw.send(SENDER, [TO], data)
    assert reply.code == 250, reply
    queue_id(reply.text)
    [copy] = server.wait_for(1)
    assert copy.rcpt_tos == (TO,)
    assert copy.tls_version.startswith("TLSv1."), copy.tls_version
    assert copy.tls_version != "TLSv1.1"
    assert gw.relayed() == []  # the smarthost never saw it


def test_mx_down_the_client_gets_250_and_the_mail_goes_when_it_is_back(
    direct: Callable[..., Gateway], mx: Mx, gateway: GatewayRunner
) -> None:
    gw = direct(retry_after="1h")  # only `gateway queue retry` makes it due again
    data = message(to=[TO])
    reply = gw.send(SENDER, [TO], data)
    assert reply.code == 250, reply
    entry = queue_id(reply.text)
    gw.proc.wait_event("queued delivery attempted", queue_id=entry)
    listed = gateway("queue", "list", "--config", str(gw.proc.config))
    assert listed.returncode == 0, listed.stderr
    assert entry in listed.stdout
    assert f"{TO} (pending)" in listed.stdout
    server = mx.start()
    retried = gateway("queue", "retry", entry, "--config", str(gw.proc.config))
    assert retried.returncode == 0, retried.stderr
    [copy] = server.wait_for(1, timeout=30)
    assert copy.rcpt_tos == (TO,)
    assert copy.tls_version
    wait_delivered(gw, TO)
    shown = gateway("queue", "show", entry, "--config", str(gw.proc.config))
    assert f"{TO}: delivered" in shown.stdout
    after = gateway("queue", "list", "--config", str(gw.proc.config))
    assert after.stdout.strip() == "nothing waits in the queue", after.stdout


@pytest.mark.parametrize("confirm", [True, False], ids=["confirm_delivery", "no-confirmation"])
def test_the_sender_is_told_how_a_queued_copy_left_only_with_confirm_delivery(
    direct: Callable[..., Gateway], mx: Mx, confirm: bool
) -> None:
    server = mx.start()
    gw = direct(notify={"confirm_delivery": confirm}, web={"enabled": False})
    original = message(to=[TO], body="Wilhelmina is safe at home.\r\n")
    reply = gw.send(SENDER, [TO], original)
    entry = queue_id(reply.text)
    server.wait_for(1)
    wait_delivered(gw, TO)
    if not confirm:
        gw.upstream.wait_for(1, timeout=0.5, where=is_notice)  # were there one, it goes now
        assert gw.notices() == []
        return
    [notice] = gw.wait_notices(1)
    assert notice.rcpt_tos == (SENDER,)
    shown = readable(notice)
    assert "Subject: Delivered securely" in shown
    assert f"{TO}: delivered to mx1.secure.test over TLS 1." in shown
    assert "certificate verified by MTA-STS" in shown
    assert f"Reference: {entry}" in shown
    assert "Wilhelmina" not in shown


def test_gateway_trace_of_the_queue_id_tells_the_whole_path(
    direct: Callable[..., Gateway], mx: Mx, gateway: GatewayRunner
) -> None:
    server = mx.start()
    gw = direct()
    original = message(to=[TO])
    entry = queue_id(gw.send(SENDER, [TO], original).text)
    server.wait_for(1)
    wait_delivered(gw, TO)
    traced = gateway("trace", entry, "--json", "--config", str(gw.proc.config))
    assert traced.returncode == 0, traced.stderr
    path = json.loads(traced.stdout)
    assert entry in path["queue_ids"]
    events = [step["event"] for step in path["steps"]]
    assert events[0] == "queued", events  # its arrival: wholly queued mail is not relayed
    assert {"queue-delivered", "delivered"} <= set(events), events
    texts = {step["event"]: step["text"] for step in path["steps"]}
    assert texts["queued"].startswith(f"Queued as {entry} for delivery")
    assert texts["queue-delivered"] == (
        f"Taken by the mail server of secure.test from queue entry {entry}: {TO}"
    )
    delivered = next(s for s in path["steps"] if s["event"] == "queue-delivered")
    assert "reply" not in delivered["data"]  # the copy's own proof has the reply
    assert path["outcomes"][TO].startswith(f"delivered to {TO} via mx1.secure.test")
    assert "certificate verified by MTA-STS" in path["outcomes"][TO]


def test_purge_removes_it_and_tells_the_sender(
    direct: Callable[..., Gateway], gateway: GatewayRunner
) -> None:
    gw = direct(retry_after="1h")
    reply = gw.send(SENDER, [TO], message(to=[TO]))
    entry = queue_id(reply.text)
    gw.proc.wait_event("queued delivery attempted", queue_id=entry)
    config = str(gw.proc.config)
    purged = gateway("queue", "purge", entry, "--reason", "sent by hand", "--config", config)
    assert purged.returncode == 0, purged.stderr
    # RFC 5321 §4.5.5: a non-delivery notice goes with the null reverse-path.
    [notice] = gw.upstream.wait_for(1, where=lambda m: m.mail_from == "")
    assert notice.rcpt_tos == (SENDER,)
    assert "sent by hand" in readable(notice)
    again = gateway("queue", "purge", entry, "--reason", "twice", "--config", config)
    assert again.returncode == 1
    trail = gateway("audit", "list", "--config", config)
    assert "queue-purged" in trail.stdout
    traced = gateway("trace", entry, "--json", "--config", config)
    assert traced.returncode == 0, traced.stderr
    outcome = json.loads(traced.stdout)["outcomes"][TO]
    assert outcome.startswith("taken out of the queue by "), outcome
    assert outcome.endswith(": sent by hand"), outcome


def test_kill_9_during_delivery_leaves_exactly_one_copy(
    direct: Callable[..., Gateway], mx: Mx, tmp_path: Path
) -> None:
    server = mx.start(data_delay=3.0)
    data_dir = tmp_path / "data"
    gw = direct(data_dir)
    reply = gw.send(SENDER, [TO], message(to=[TO]))
    assert reply.code == 250, reply
    assert server.wait_data(TO)
    gw.proc.kill()
    server.data_delay = 0.0
    gw.restart()
    server.wait_for(1, timeout=30)
    wait_delivered(gw, TO)
    assert len(server.messages) == 1
    assert server.aborted == 1  # the copy cut off by the kill was never taken


def wait_delivered(gw: Gateway, address: str, timeout: float = 30.0) -> None:
    """Until the gateway's log says the queue has recorded ``address`` as delivered."""
    deadline = time.monotonic() + timeout
    while True:
        attempts = gw.proc.events("queued delivery attempted")
        if any(str(e["outcomes"].get(address, "")).startswith("delivered") for e in attempts):
            return
        assert time.monotonic() < deadline, gw.proc.output()
        time.sleep(0.02)


# What Postfix says with smtp_send_xforward_command=yes, and what the gateway makes of it.
XFORWARD = (
    "XFORWARD NAME=pc7.school.test ADDR=192.0.2.7 PORT=50123 PROTO=ESMTP",
    "XFORWARD HELO=PC7 IDENT=4XyZ12 SOURCE=REMOTE",
)
SENT_FROM = "pc7.school.test[192.0.2.7] (HELO PC7) via 127.0.0.1, MTA queue id 4XyZ12"


def send_forwarded(gw: Gateway, data: bytes) -> str:
    """``data`` to TO as the organisation's MTA sends it, naming its client; the queue id."""
    with raw_session(gw.address) as (session, greeting):
        assert greeting.code == 220, greeting
        session.expect("EHLO mta.school.test", 250)
        for line in XFORWARD:
            session.expect(line, 250)
        session.expect(f"MAIL FROM:<{SENDER}>", 250)
        session.expect(f"RCPT TO:<{TO}>", 250)
        session.expect("DATA", 354)
        entry = queue_id(session.expect(data + b".\r\n", 250).text)
        session.expect("QUIT", 221)
    return entry


def test_a_hold_made_when_delivery_gives_up_names_the_client_behind_the_mta(
    direct: Callable[..., Gateway], gateway: GatewayRunner
) -> None:
    # No MX host answers: the entry gives up at once and becomes a hold for review, which
    # must say who sent it as a hold made at the end of DATA does, not just "192.0.2.7".
    gw = direct(retry_after="1s", delivery_more={"give_up_after": "1s"})
    original = message(to=[TO])
    entry = send_forwarded(gw, original)
    gw.proc.wait_event("queued delivery given up", queue_id=entry, timeout=20)
    [hold] = gw.holds(of=original)
    config = str(gw.proc.config)
    shown = gateway("held", "show", hold.id, "--config", config)
    assert shown.returncode == 0, shown.stderr
    assert f"Sent from: {SENT_FROM}" in shown.stdout.splitlines()
    listed = gateway("held", "show", hold.id, "--json", "--config", config)
    assert json.loads(listed.stdout)["client"] == SENT_FROM


def test_a_queued_copy_names_the_client_behind_the_mta_in_its_received_field(
    direct: Callable[..., Gateway], mx: Mx
) -> None:
    server = mx.start()
    gw = direct()
    original = message(to=[TO])
    send_forwarded(gw, original)
    [copy] = server.wait_for(1)
    # As a copy relayed at once has it: the client, then the MTA as the hop (RFC 5321 §4.4).
    assert copy.data.startswith(
        b"Received: from PC7 (pc7.school.test [192.0.2.7])\r\n"
        b"\t(via mta.school.test [127.0.0.1])\r\n"
    ), copy.data[:300]
