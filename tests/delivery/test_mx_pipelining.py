"""Direct delivery pipelined (RFC 2920) to MX hosts that advertise PIPELINING, over the TLS
their policy demands: one write for MAIL, RCPT and DATA, and the next-host rules of the
command-by-command path, which a host without PIPELINING still gets."""

from __future__ import annotations

from pathlib import Path

import pytest

from rig import mx
from rig.mx import MxServers
from rig.rig import Rig
from tests.delivery.test_mx import STS, deliver, mx1, mx2

LEAD, BOB = f"lead@{STS}", f"bob@{STS}"


def groups(servers: MxServers, host: str) -> list[bytes]:
    return [c for c in servers[host].chunks if c.startswith(b"MAIL FROM:")]


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "command-by-command"])
async def test_delivered_over_tls_with_and_without_pipelining(
    rig: Rig, tmp_path: Path, pipelining: bool
) -> None:
    def advertise(servers: MxServers) -> None:
        servers[mx1(STS)].pipelining = pipelining

    result = await deliver(
        rig, tmp_path, STS, (mx.GOOD, mx.GOOD), tweak=advertise, recipients=(LEAD, BOB)
    )
    assert result.sent is not None
    assert result.sent.accepted == [LEAD, BOB]
    assert all(result.recorded_tls())  # flagged: over TLS only
    [group] = groups(result.servers, mx1(STS))
    if pipelining:
        assert group.endswith(b"RCPT TO:<bob@deliver-sts.test>\r\nDATA\r\n")
    else:
        assert group == b"MAIL FROM:<head@school.test>\r\n"


async def test_every_rcpt_deferred_in_a_group_tries_the_next_host(rig: Rig, tmp_path: Path) -> None:
    def defer(servers: MxServers) -> None:
        servers[mx1(STS)].fail_rcpt = {LEAD: 451, BOB: 452}

    result = await deliver(
        rig, tmp_path, STS, (mx.GOOD, mx.GOOD), tweak=defer, recipients=(LEAD, BOB)
    )
    assert result.sent is not None
    assert result.sent.accepted == [LEAD, BOB]
    assert result.delivered_to() == mx2(STS)


@pytest.mark.parametrize("verb", ["MAIL", "RCPT"])
async def test_a_host_that_closes_before_the_text_is_passed_over(
    rig: Rig, tmp_path: Path, verb: str
) -> None:
    # Nothing of the message was sent to mx1: mx2 may have it without a duplicate.
    def drop(servers: MxServers) -> None:
        servers[mx1(STS)].drop_at = verb

    result = await deliver(rig, tmp_path, STS, (mx.GOOD, mx.GOOD), tweak=drop)
    assert result.sent is not None
    assert result.delivered_to() == mx2(STS)
    assert any(mx1(STS) in line for line in result.sent.skipped)
