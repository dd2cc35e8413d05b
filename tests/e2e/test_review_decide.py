"""`gateway held release` and `gateway held reject` end to end: a hold made by flagged mail sent
through `gateway serve`, decided with the command line as a subprocess, and what reaches the
recording upstream: the released copy (the original bytes under the gateway's trace lines,
with the DSN options recorded at hold time) and the notices to the sender.

One gateway serves the module; each test sends its own message and looks only at its hold.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from rig import Rig
from rig.gatewayproc import Gateway, readable, split_trace
from rig.heldcli import (
    INSECURE,
    OS_USER,
    SECURE,
    SENDER,
    ReviewCli,
    cli_for,
    notice_subject,
    notices_of,
    review_gateway,
    send_held,
    state,
    status,
)
from rig.sharedstore import SharedStore

pytestmark = [pytest.mark.e2e, pytest.mark.both_backends]

RATIONALE = "Social worker confirmed by phone that this is her work address"
# What the notices must never show: the body, and (without [notify] include_subject, see
# test_review_notices.py) the subject.
SUBJECT = "Referral for Zebedee Quokka"
BODY = "Zebedee Quokka lives at 12 Oak Street with his grandmother.\r\n"


@pytest.fixture(scope="module")
def gw(
    rig: Rig, tmp_path_factory: pytest.TempPathFactory, module_store: SharedStore | None
) -> Iterator[Gateway]:
    with review_gateway(rig, tmp_path_factory.mktemp("review-decide"), module_store) as gateway:
        yield gateway


@pytest.fixture
def cli(gw: Gateway) -> ReviewCli:
    assert gw.proc.running, gw.proc.output()
    gw.upstream.reset()
    return cli_for(gw)


def assert_private(gw: Gateway, hold: str) -> list[str]:
    """No notice about `hold` shows its body or its subject; their subjects, in order."""
    found = notices_of(gw, hold)
    for notice in found:
        text = readable(notice)
        for words in ("Zebedee", "Quokka", "Oak Street", "grandmother"):
            assert words not in text, text
    return [notice_subject(n) for n in found]


# ---- release


def test_release_relays_the_held_copy_once_and_records_who_and_why(
    gw: Gateway, cli: ReviewCli
) -> None:
    mail_options = ("RET=HDRS", "ENVID=Rel+2B1")
    rcpt_options = ("NOTIFY=SUCCESS,FAILURE", f"ORCPT=rfc822;{INSECURE}")
    hold, original = send_held(
        gw,
        to=(SECURE, INSECURE),
        mail_options=mail_options,
        rcpt_options=rcpt_options,
        subject=SUBJECT,
        body=BODY,
    )
    [at_once] = gw.relayed(of=original)  # the secure recipient's copy, sent straight away
    assert at_once.rcpt_tos == (SECURE,)

    ran = cli.run("held", "release", hold, "--reason", RATIONALE, "--by", "Jo Smith (DSL)")
    assert ran.code == 0, str(ran)
    assert ran.stdout == f"released {hold}: sent to {INSECURE}\n", str(ran)

    copies = gw.relayed(of=original)
    assert len(copies) == 2, copies
    released = copies[1]
    assert released.mail_from == SENDER
    assert released.rcpt_tos == (INSECURE,)
    # The DSN parameters given at hold time go with the release, as they came.
    assert released.mail_options == mail_options
    assert released.rcpt_options == (rcpt_options,)
    # The original bytes, the gateway's two trace lines on top.
    trace = split_trace(released.data, original)
    assert [f.split(":", 1)[0] for f in trace] == ["Received", "X-Safeguarding-Gateway"], trace
    assert trace[0].startswith("Received: from gateway.test"), trace
    assert trace[1] == (
        f"X-Safeguarding-Gateway: released after review; hold={hold}; by=Jo Smith (DSL)"
    ), trace

    entry, trail = state(gw, hold)
    assert entry["status"] == "released"
    assert entry["decided_by"] == "Jo Smith (DSL)"
    assert entry["decision"] == RATIONALE
    assert entry["delivered"] == [INSECURE]
    assert entry["refused"] == {}
    events = [(e["event"], e["actor"], e["data"].get("kind")) for e in trail]
    # The two held notices are one event's: their order between them is not promised.
    events[1:3] = sorted(events[1:3])
    assert events == [
        ("held", "gateway", None),
        ("notice-sent", "gateway", "held"),
        ("notice-sent", "gateway", "held-reviewers"),
        ("release-requested", "Jo Smith (DSL)", None),
        ("delivered", "gateway", None),  # how the released copy left
        ("released", "Jo Smith (DSL)", None),
        ("notice-sent", "gateway", "released"),
    ]
    [proof] = [e["data"] for e in trail if e["event"] == "delivered"]
    assert (proof["recipient"], proof["route"], proof["queue_id"]) == (INSECURE, "smarthost", hold)
    assert proof["reply"].startswith("250 2.0.0 Ok: queued as ")

    # `audit list --hold ID` shows the decision with the rationale and the reviewer.
    listed = cli.ok("audit", "list", "--hold", hold).stdout.splitlines()
    assert len(listed) == len(trail), listed
    [requested] = [line for line in listed if " release-requested " in line]
    assert f"  {hold}  Jo Smith (DSL)  " in requested, requested
    assert requested.endswith(f"  Release decided by Jo Smith (DSL): {RATIONALE}"), requested
    [done] = [line for line in listed if " released " in line]
    assert f"  {hold}  Jo Smith (DSL)  " in done, done
    assert done.endswith(f"  Released by Jo Smith (DSL): {RATIONALE} — sent to {INSECURE}"), done
    # --verbose keeps every fact: each entry's data as JSON on the line under it; --json all.
    verbose = cli.ok("audit", "list", "--hold", hold, "--verbose").stdout.splitlines()
    assert len(verbose) == 2 * len(trail), verbose
    assert [json.loads(line) for line in verbose[1::2]] == [e["data"] for e in trail]
    assert verbose[::2] == listed
    as_json = json.loads(cli.ok("audit", "list", "--hold", hold, "--json").stdout)
    assert [e["data"] for e in as_json] == [e["data"] for e in trail]
    assert all(line.endswith(f"  {e['sentence']}") for e, line in zip(as_json, listed, strict=True))

    # The sender is told, once; the notice names the reviewer and who got it.
    [notice] = notices_of(gw, hold, "Released after review")
    assert notice.rcpt_tos == (SENDER,)
    text = readable(notice)
    assert "was reviewed and released by Jo Smith (DSL)" in text, text
    assert f"It has now been sent to: {INSECURE}" in text, text

    # Released is final: a second release is refused and sends nothing.
    again = cli.run("held", "release", hold, "--reason", "again", "--by", "Jo")
    assert again.code == 2, str(again)
    assert "is released; only held messages are released" in again.stderr, str(again)
    assert len(gw.relayed(of=original)) == 2
    assert assert_private(gw, hold) == [
        "Held for safeguarding review",
        f"Safeguarding hold to review: {hold}",
        "Released after review",
    ]


def test_release_by_defaults_to_the_os_user(gw: Gateway, cli: ReviewCli) -> None:
    hold, original = send_held(gw)
    ran = cli.run("held", "release", hold, "--reason", RATIONALE)
    assert ran.code == 0, str(ran)
    entry, trail = state(gw, hold)
    assert entry["decided_by"] == OS_USER
    actors = {e["event"]: e["actor"] for e in trail}
    assert actors["release-requested"] == OS_USER
    assert actors["released"] == OS_USER
    [copy] = gw.relayed(of=original)
    assert f"by={OS_USER}".encode() in copy.data.split(b"\r\nFrom: ")[0]


@pytest.mark.parametrize("rationale", ["", " \t\n "], ids=["empty", "blank"])
def test_release_without_a_rationale_is_refused(
    gw: Gateway, cli: ReviewCli, rationale: str
) -> None:
    hold, original = send_held(gw)
    ran = cli.run("held", "release", hold, "--reason", rationale, "--by", "Jo")
    assert ran.code == 2, str(ran)
    assert "a release needs a written rationale" in ran.stderr, str(ran)
    assert ran.stdout == ""
    assert gw.relayed(of=original) == []
    entry, trail = state(gw, hold)
    assert entry["status"] == "held"
    assert entry["decided_by"] is None
    assert [e["event"] for e in trail] == ["held", "notice-sent", "notice-sent"]
    assert notices_of(gw, hold, "Released") == []


def test_release_without_the_reason_option_or_of_an_unknown_hold_is_a_usage_error(
    gw: Gateway, cli: ReviewCli
) -> None:
    hold, original = send_held(gw)
    no_option, unknown = cli.run_all(
        [
            ("held", "release", hold, "--by", "Jo"),
            ("held", "release", "feedfacefeedface", "--reason", RATIONALE),
        ]
    )
    assert no_option.code == 2, str(no_option)
    assert "--reason" in no_option.stderr, str(no_option)
    assert unknown.code == 2, str(unknown)
    assert "no held message 'feedfacefeedface'" in unknown.stderr, str(unknown)
    assert gw.relayed(of=original) == []
    assert status(gw, hold) == "held"


def test_release_to_several_held_recipients_is_one_copy(gw: Gateway, cli: ReviewCli) -> None:
    recipients = (INSECURE, "x@unlisted.test", "y@testing.test")
    hold, original = send_held(gw, to=recipients)
    ran = cli.run("held", "release", hold, "--reason", RATIONALE, "--by", "Jo")
    assert ran.code == 0, str(ran)
    assert ran.stdout == f"released {hold}: sent to {', '.join(recipients)}\n", str(ran)
    [copy] = gw.relayed(of=original)
    assert copy.rcpt_tos == recipients
    split_trace(copy.data, original)


def test_a_recipient_the_upstream_refuses_at_release_is_reported(
    gw: Gateway, cli: ReviewCli
) -> None:
    hold, original = send_held(gw, to=(INSECURE, "x@unlisted.test"))
    gw.upstream.fail_rcpt = {"x@unlisted.test": 550}
    ran = cli.run("held", "release", hold, "--reason", RATIONALE, "--by", "Jo")
    assert ran.code == 1, str(ran)
    assert f"released {hold}: sent to {INSECURE}" in ran.stdout, str(ran)
    assert "the upstream refused x@unlisted.test: 550" in ran.stdout, str(ran)
    [copy] = gw.relayed(of=original)
    assert copy.rcpt_tos == (INSECURE,)
    entry = state(gw, hold)[0]
    assert entry["status"] == "released"
    assert list(entry["refused"]) == ["x@unlisted.test"]
    [notice] = notices_of(gw, hold, "Released after review")
    text = readable(notice)
    assert "Our mail server could not pass it on to:" in text, text
    assert "x@unlisted.test: 550" in text, text


# ---- reject


def test_reject_sends_nothing_and_tells_the_sender_why(gw: Gateway, cli: ReviewCli) -> None:
    reason = "Use the council's secure portal for referrals instead"
    hold, original = send_held(gw, subject=SUBJECT, body=BODY)
    ran = cli.run("held", "reject", hold, "--reason", reason, "--by", "Jo Smith (DSL)")
    assert ran.code == 0, str(ran)
    assert ran.stdout == f"rejected {hold}; the sender will be told the reason\n", str(ran)
    assert gw.relayed(of=original) == []

    entry, trail = state(gw, hold)
    assert entry["status"] == "rejected"
    assert entry["decided_by"] == "Jo Smith (DSL)"
    assert entry["decision"] == reason
    [rejected] = [e for e in trail if e["event"] == "rejected"]
    assert (rejected["actor"], rejected["data"]) == ("Jo Smith (DSL)", {"reason": reason})

    [notice] = notices_of(gw, hold, "Not sent after review")
    assert notice.rcpt_tos == (SENDER,)
    text = readable(notice)
    assert f"Reason: {reason}" in text, text
    assert f"was reviewed by Jo Smith (DSL) and will not be sent to {INSECURE}" in text, text

    # Rejected is final.
    for again in cli.run_all(
        [("held", action, hold, "--reason", "changed my mind") for action in ("release", "reject")]
    ):
        assert again.code == 2, str(again)
        assert "is rejected" in again.stderr, str(again)
    assert gw.relayed(of=original) == []
    assert assert_private(gw, hold)[2:] == ["Not sent after review"]


def test_reject_without_a_reason_is_refused(gw: Gateway, cli: ReviewCli) -> None:
    hold, original = send_held(gw)
    for ran in cli.run_all([("held", "reject", hold, "--reason", r) for r in ("", "  \t")]):
        assert ran.code == 2, str(ran)
        assert "a reject needs a reason" in ran.stderr, str(ran)
    entry, trail = state(gw, hold)
    assert entry["status"] == "held"
    assert "rejected" not in [e["event"] for e in trail]
    assert notices_of(gw, hold, "Not sent") == []
    assert gw.relayed(of=original) == []
