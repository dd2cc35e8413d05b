"""Proof of delivery end to end: flagged mail relayed through the smarthost leaves a
``delivered`` entry per recipient with the upstream's queue id; `gateway trace` prints a
message's path by Message-ID (with or without <>), queue id or hold id, through a hold and
its release; an unknown id is refused as `held show` refuses one; the trail still verifies;
and `[notify] confirm_delivery` tells the sender how each copy left, only when it is on.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator

import pytest

from rig import Rig
from rig.gatewayproc import Gateway, message, message_id, readable
from rig.heldcli import (
    INSECURE,
    SECURE,
    SENDER,
    ReviewCli,
    cli_for,
    hold_id,
    proofs,
    review_gateway,
    send_held,
    wait_events,
)

pytestmark = pytest.mark.e2e

SUBJECT = "Referral for Wilhelmina Axolotl"
NOT_AUDITED = "is not in the audit trail (unflagged mail is logged, not audited)"
EXIT_USAGE = 2  # what `gateway held show` exits with for a hold it does not know


@pytest.fixture(scope="module")
def gw(rig: Rig, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with review_gateway(rig, tmp_path_factory.mktemp("trace")) as gateway:
        yield gateway


@pytest.fixture
def cli(gw: Gateway) -> ReviewCli:
    assert gw.proc.running, gw.proc.output()
    gw.upstream.reset()
    return cli_for(gw)


def relayed_as(text: str) -> str:
    match = re.search(r"relayed as ([0-9a-f]+)", text)
    assert match, text
    return match.group(1)


def test_flagged_mail_via_the_smarthost_is_proven_and_traced(gw: Gateway, cli: ReviewCli) -> None:
    original = message(to=[SECURE], subject=SUBJECT)
    mid = message_id(original)
    reply = gw.send(SENDER, [SECURE], original)
    assert reply.code == 250, reply
    [copy] = gw.wait_relayed(1, of=original)
    [proof] = proofs(gw, mid, 1)
    assert proof["recipient"] == SECURE
    assert proof["route"] == "smarthost"
    assert proof["queue_id"] == relayed_as(reply.text)
    # The upstream's own words, with the queue id it gave the copy.
    queued = [m for m in gw.upstream.messages].index(copy) + 1
    assert proof["reply"] == f"250 2.0.0 Ok: queued as {queued}"
    # The test upstream speaks plaintext: nothing vouched for it, and the proof says so.
    assert proof["authenticated"] == "none"
    assert proof["tls_version"] == copy.tls_version

    by_mid, bare, by_queue, as_json, verified = cli.run_all(
        [
            ("trace", mid),
            ("trace", mid.strip("<>")),
            ("trace", proof["queue_id"]),
            ("trace", mid, "--json"),
            ("audit", "verify"),
        ]
    )
    for ran in (by_mid, bare, by_queue):
        assert ran.code == 0, str(ran)
        assert ran.stdout == by_mid.stdout
    text = by_mid.stdout
    assert f"Message {mid} from {SENDER}" in text
    assert re.search(rf"received\s+Received from {SENDER} \(client 127\.0\.0\.1\)", text), text
    assert f"delivered          Delivered to {SECURE} via" in text
    assert f"— 250 2.0.0 Ok: queued as {queued}" in text
    assert f"  {SECURE}: delivered to {SECURE} via" in text
    assert SUBJECT not in text  # no subject unless [notify] include_subject; never a body
    data = as_json.json()
    assert data["message_id"] == mid
    assert [s["event"] for s in data["steps"]] == ["received", "relayed", "delivered"]
    assert data["outcomes"][SECURE].startswith(f"delivered to {SECURE} via")
    assert "subject" not in data
    assert verified.code == 0, str(verified)
    assert "audit trail intact" in verified.stdout

    listed = cli.ok("audit", "list").stdout
    assert f"Delivered to {SECURE} via" in listed  # a sentence, not the raw fields


def test_trace_of_a_hold_through_its_release(gw: Gateway, cli: ReviewCli) -> None:
    hold, original = send_held(gw, to=(INSECURE,))
    mid = message_id(original)
    before = cli.run("trace", hold)
    assert before.code == 0, str(before)
    assert (
        f"Held for review as {hold}: {INSECURE} — No MTA-STS policy (sts-no-record)"
        in before.stdout
    )
    assert f"  {INSECURE}: held for review as {hold}" in before.stdout

    cli.ok("held", "release", hold, "--reason", "Checked with the DSL by phone", "--by", "Jo")
    wait_events(gw, hold, "released", 1)
    [proof] = proofs(gw, mid, 1)
    assert (proof["recipient"], proof["route"], proof["queue_id"]) == (INSECURE, "smarthost", hold)

    by_hold, by_mid = cli.run_all([("trace", hold, "--json"), ("trace", mid, "--json")])
    data = by_hold.json()
    assert data == by_mid.json()
    events = [s["event"] for s in data["steps"]]
    assert events[:2] == ["received", "held"]
    assert events.index("release-requested") < events.index("delivered") < events.index("released")
    [decided] = [s for s in data["steps"] if s["event"] == "release-requested"]
    assert decided["text"] == "Release decided by Jo: Checked with the DSL by phone"
    assert data["outcomes"][INSECURE].startswith(f"delivered to {INSECURE} via")
    assert data["holds"] == [{"id": hold, "status": "released"}]


def test_trace_of_a_rejected_hold_says_it_was_not_sent(gw: Gateway, cli: ReviewCli) -> None:
    hold, _ = send_held(gw, to=(INSECURE,))
    cli.ok("held", "reject", hold, "--reason", "Not needed", "--by", "Jo")
    data = cli.run("trace", hold, "--json").json()
    assert data["outcomes"][INSECURE] == "not sent: rejected by jo: not needed"


def test_an_unknown_or_unflagged_message_is_not_in_the_trail(gw: Gateway, cli: ReviewCli) -> None:
    unflagged = message(to=[SECURE], flagged=False)
    assert gw.send(SENDER, [SECURE], unflagged).code == 250
    gw.wait_relayed(1, of=unflagged)
    for ident in ("0123456789ab", message_id(unflagged)):
        ran = cli.run("trace", ident)
        assert ran.code == EXIT_USAGE, str(ran)
        assert NOT_AUDITED in ran.stderr
        assert ran.stdout == ""


def test_the_sender_is_told_how_it_left_only_with_confirm_delivery(
    serve: Callable[..., Gateway], gw: Gateway
) -> None:
    # Off (the default): a flagged message delivered draws no confirmation.
    quiet = message(to=[SECURE])
    assert gw.send(SENDER, [SECURE], quiet).code == 250
    proofs(gw, message_id(quiet), 1)
    time.sleep(0.3)  # the notice, were there one, goes out right after the relay
    assert not [n for n in gw.notices() if message_id(quiet).encode() in n.data]

    on = serve(notify={"confirm_delivery": True}, web={"enabled": False})
    original = message(to=[SECURE], subject=SUBJECT, body="Wilhelmina is safe at home.\r\n")
    assert on.send(SENDER, [SECURE], original).code == 250
    [notice] = on.wait_notices(1)
    assert notice.rcpt_tos == (SENDER,)
    shown = readable(notice)
    assert "Subject: Delivered securely" in shown
    assert f"In-Reply-To: {message_id(original)}" in shown
    assert f"{SECURE}: handed to our mail server" in shown
    assert "Wilhelmina" not in shown  # neither the subject nor the body
    # Held mail is not confirmed: not every recipient has it (the sender hears of the hold).
    held = message(to=[SECURE, INSECURE])
    wait_events(on, hold_id(on.send(SENDER, [SECURE, INSECURE], held)), "notice-sent", 1)
    later = [readable(n) for n in on.notices()[1:]]
    assert [n for n in later if "Subject: Held for safeguarding review" in n]
    assert not [n for n in later if "Subject: Delivered" in n]
