"""The image as a user runs it: mail through the containerised gateway to the rig's upstream,
a hold for an insecure recipient, a healthcheck that tells a stuck gateway from a working one,
and a clean stop on SIGTERM."""

from pathlib import Path

from rig.containergw import IMAGE_UID, ContainerProcess, run_container
from rig.gatewayproc import message
from rig.rig import Rig
from rig.upstream import Upstream

SENDER = "head@school.test"


def test_the_image_relays_holds_checks_health_and_stops(
    image: str, rig: Rig, upstream: Upstream, tmp_path: Path
) -> None:
    gw = run_container(rig, tmp_path, upstream)
    proc = gw.proc
    assert isinstance(proc, ContainerProcess)
    try:
        flagged = message(to=["colleague@secure.test"])
        plain = message(to=["friend@nosts.test"], flagged=False, subject="Lunch")
        risky = message(to=["officer@nosts.test"])
        for recipient, data in (
            ("colleague@secure.test", flagged),
            ("friend@nosts.test", plain),
            ("officer@nosts.test", risky),
        ):
            reply = gw.send(SENDER, [recipient], data)
            assert reply.code == 250, (recipient, reply, proc.output())

        [relayed_flagged] = gw.wait_relayed(1, of=flagged)
        assert relayed_flagged.rcpt_tos == ("colleague@secure.test",)
        [relayed_plain] = gw.wait_relayed(1, of=plain)
        assert relayed_plain.rcpt_tos == ("friend@nosts.test",)
        [hold] = gw.holds(of=risky)
        assert hold.addresses == ["officer@nosts.test"]
        assert hold.reasons("officer@nosts.test") == ["sts-no-record"]
        assert gw.relayed(of=risky) == []
        # State written by the image's unprivileged user, private to it.
        assert gw.held_db.stat().st_uid == IMAGE_UID
        assert gw.held_db.stat().st_mode & 0o777 == 0o600

        status, said = proc.healthcheck()
        assert status == 0, (said, proc.output())
        assert proc.state("{{.State.Health.Status}}") == "healthy"
        assert "greets and answers NOOP" in proc.last_health_output()
        # A gateway that no longer answers SMTP (stopped, its port still open) is unhealthy.
        proc.signal("SIGSTOP")
        try:
            status, said = proc.healthcheck()
        finally:
            proc.signal("SIGCONT")
        assert status != 0, said
        assert "unhealthy: SMTP 127.0.0.1" in proc.last_health_output()

        assert proc.stop() == 0, proc.output()
        assert not proc.forced, "the gateway ignored SIGTERM"
        assert proc.events("stopping"), proc.output()
    finally:
        proc.remove()
