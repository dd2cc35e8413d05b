"""Escalation, expiry and retention end to end, with durations of seconds: `gateway serve`'s own
sweep, `gateway held sweep` run once by hand, and `gateway held purge`."""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rig import Rig
from rig.gatewayproc import Gateway, readable
from rig.heldcli import (
    ESCALATION_CONTACT,
    INSECURE,
    REVIEWER,
    SENDER,
    ReviewCli,
    cli_for,
    has_body,
    notices_of,
    review_gateway,
    send_held,
    state,
    wait_notices_of,
)
from rig.sharedstore import SharedStore

pytestmark = [pytest.mark.e2e, pytest.mark.both_backends]

Serve = Callable[..., Gateway]

SUBJECT = "Referral for Zebedee Quokka"
BODY = "Zebedee Quokka, 12 Oak Street: notes from the strategy meeting.\r\n"
PRIVATE = ("Zebedee", "Quokka", "Oak Street")


@pytest.fixture
def serve(rig: Rig, tmp_path: Path, store: SharedStore | None) -> Iterator[Serve]:
    numbers = itertools.count(1)
    with contextlib.ExitStack() as stack:

        def start(**overrides: dict[str, object]) -> Gateway:
            workdir = tmp_path / f"gateway-{next(numbers)}"
            return stack.enter_context(review_gateway(rig, workdir, store, **overrides))

        yield start


def sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.monotonic()))


def assert_private(gw: Gateway, hold: str) -> None:
    """No notice about `hold` quotes its body or (by default) its subject."""
    for notice in notices_of(gw, hold):
        text = readable(notice)
        for words in PRIVATE:
            assert words not in text, text


def test_serve_escalates_once_then_expires_and_tells_everyone(serve: Serve) -> None:
    gw = serve(review={"escalate_after": "0.5s", "expire_after": "1.5s", "sweep_interval": "0.5s"})
    cli = cli_for(gw)
    hold, original = send_held(gw, subject=SUBJECT, body=BODY)

    [expired] = wait_notices_of(gw, hold, 1, "Not sent: review time ran out", timeout=20)
    assert expired.rcpt_tos == (SENDER,)
    text = readable(expired)
    assert f"(reference {hold}) was not reviewed within 1.5s" in text, text
    assert f"has not been sent to {INSECURE}" in text, text

    [escalated] = notices_of(gw, hold, "Escalated")
    assert escalated.rcpt_tos == (ESCALATION_CONTACT, REVIEWER)
    text = readable(escalated)
    assert f"Subject: Escalated: safeguarding hold {hold} awaits review" in text, text
    assert f"Review it with: gateway held show {hold}" in text, text
    assert f"To: {INSECURE}" in text, text
    assert_private(gw, hold)
    assert gw.relayed(of=original) == []

    entry, trail = state(gw, hold)
    assert entry["status"] == "expired"
    assert entry["escalated"]
    assert entry["decided_by"] == "gateway"
    events = [(e["event"], e["actor"], e["data"].get("kind")) for e in trail]
    events[1:3] = sorted(events[1:3])  # the two held notices: their order is not promised
    assert events == [
        ("held", "gateway", None),
        ("notice-sent", "gateway", "held"),
        ("notice-sent", "gateway", "held-reviewers"),
        ("escalated", "gateway", None),
        ("notice-sent", "gateway", "escalated"),
        ("expired", "gateway", None),
        ("notice-sent", "gateway", "expired"),
    ], events
    [escalation] = [e for e in trail if e["event"] == "escalated"]
    assert escalation["data"]["contacts"] == [ESCALATION_CONTACT, REVIEWER]
    # Expired is final.
    ran = cli.run("held", "release", hold, "--reason", "Too late, but needed", "--by", "Jo")
    assert ran.code == 2, str(ran)
    assert "is expired" in ran.stderr, str(ran)
    assert gw.relayed(of=original) == []


def sweep(cli: ReviewCli, env: dict[str, str] | None = None) -> dict[str, int]:
    """`gateway held sweep`: its counts, by name."""
    ran = cli.run("held", "sweep", env=env)
    assert ran.code == 0, str(ran)
    out = ran.stdout
    counts = {}
    for part in out.strip().split(", "):
        name, _, number = part.rpartition(" ")
        counts[name] = int(number)
    assert list(counts) == ["escalated", "expired", "released", "purged", "notices sent"], out
    return counts


def test_held_sweep_escalates_and_expires_once(serve: Serve) -> None:
    # No sweep of serve's own during the test (sweep_interval 1h): only the command's. The
    # hold expires after an hour, except for the last two sweeps, which the environment (it
    # overrides the file) tells 0.5s: the test need not wait out an expire_after long enough
    # for every step before it, however slow the machine.
    gw = serve(review={"escalate_after": "0.5s", "expire_after": "1h"})
    cli = cli_for(gw)
    began = time.monotonic()
    hold, original = send_held(gw, subject=SUBJECT, body=BODY)
    sleep_until(began + 0.6)
    assert (sweep(cli)["escalated"], sweep(cli)["escalated"]) == (1, 0)  # once
    table = cli.ok("held", "list").stdout
    [row] = [line for line in table.splitlines() if line.startswith(hold)]
    assert row.endswith("sts-no-record (escalated)"), row

    soon = {"GATEWAY_REVIEW_EXPIRE_AFTER": "0.5s"}
    assert sweep(cli, soon)["expired"] == 1
    assert sweep(cli, soon)["expired"] == 0  # once

    [escalated] = notices_of(gw, hold, "Escalated")
    assert escalated.rcpt_tos == (ESCALATION_CONTACT, REVIEWER)
    [expired] = notices_of(gw, hold, "Not sent: review time ran out")
    assert expired.rcpt_tos == (SENDER,)
    assert_private(gw, hold)
    assert gw.relayed(of=original) == []
    assert state(gw, hold)[0]["status"] == "expired"
    # All of it is in the trail.
    listed = cli.ok("audit", "list", "--hold", hold).stdout.splitlines()
    assert [line.split()[2] for line in listed] == [
        "held",
        "notice-sent",
        "notice-sent",
        "escalated",
        "notice-sent",
        "expired",
        "notice-sent",
    ], listed
    assert f"Escalated to {ESCALATION_CONTACT}, {REVIEWER} after " in listed[3], listed
    assert listed[6].endswith("The sender was told it expired unreviewed: head@school.test")


def test_held_sweep_sends_the_notices_of_what_it_did(serve: Serve) -> None:
    gw = serve(review={"escalate_after": "0.2s", "expire_after": "1h"})
    cli = cli_for(gw)
    hold, _ = send_held(gw)
    counts = sweep(cli)
    assert counts["escalated"] == 1
    # The command has returned: what it escalated, it has told the escalation contacts.
    assert len(notices_of(gw, hold, "Escalated")) == 1, counts
    assert counts["notices sent"] == 1


def test_purge_deletes_the_bodies_of_decided_holds_only(serve: Serve) -> None:
    gw = serve()
    cli = cli_for(gw)
    waiting, _ = send_held(gw, body="Still waiting for review.\r\n")
    released, _ = send_held(gw, body="Released body.\r\n")
    rejected, _ = send_held(gw, body="Rejected body.\r\n")
    cli.ok("held", "release", released, "--reason", "Confirmed by phone", "--by", "Jo")
    cli.ok("held", "reject", rejected, "--reason", "Wrong recipient", "--by", "Jo")

    ran = cli.ok("held", "purge", "--older-than", "0d", "--by", "Sam (records)")
    assert ran.stdout == "purged 2 bodies\n", str(ran)
    assert has_body(gw, waiting)
    assert not has_body(gw, released)
    assert not has_body(gw, rejected)

    # The held message keeps its body; the decided ones keep their metadata and trail.
    kept, as_text, as_json = cli.run_all(
        [
            ("held", "show", waiting),
            ("held", "show", released),
            ("held", "show", rejected, "--json"),
        ]
    )
    assert "Still waiting for review." in kept.stdout, str(kept)
    shown = as_text.stdout
    assert "The body was purged after the retention period." in shown, shown
    assert "Released body." not in shown
    assert f"Hold {released}: released" in shown, shown
    assert "Decided by Jo at " in shown, shown
    assert shown.count(": Confirmed by phone") == 1, shown
    assert f"  {INSECURE}: nosts.test does not publish an MTA-STS policy" in shown, shown
    data = as_json.json()
    assert data["purged"] is True
    assert data["status"] == "rejected"
    assert data["decision"] == "Wrong recipient"
    assert "text" not in data
    assert "headers" not in data

    for hold, was in ((released, "released"), (rejected, "rejected")):
        entry, trail = state(gw, hold)
        assert entry["purged"]
        assert entry["status"] == was
        events = [e["event"] for e in trail]
        assert events[0] == "held"
        assert was in events  # the decision stays in the trail ...
        last = trail[-1]  # ... and the purge is added to it
        assert (last["event"], last["actor"], last["data"]) == (
            "purged",
            "Sam (records)",
            {"status": was},
        )
    entry, trail = state(gw, waiting)
    assert not entry["purged"]
    assert "purged" not in [e["event"] for e in trail]
