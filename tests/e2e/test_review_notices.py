"""The notices of the review workflow end to end, as the recording upstream receives them: with
`[notify] include_subject` they show the subject, still never the body (without it, neither:
test_review_decide.py); and each is sent once, also when `gateway serve` and a `gateway held`
command both send what is queued.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from rig import Rig
from rig.gatewayproc import Gateway, message, readable
from rig.heldcli import (
    REVIEWER,
    SENDER,
    cli_for,
    hold_id,
    notice_subject,
    notices_of,
    review_gateway,
    send_held,
    wait_notices_of,
)
from rig.sharedstore import SharedStore

pytestmark = [pytest.mark.e2e, pytest.mark.both_backends]

SUBJECT = "Referral for Zebedee Quokka"
BODY = "Zebedee Quokka lives at 12 Oak Street with his grandmother.\r\n"
BODY_WORDS = ("Oak Street", "grandmother")


@pytest.fixture(scope="module")
def module_gw(
    rig: Rig, tmp_path_factory: pytest.TempPathFactory, module_store: SharedStore | None
) -> Iterator[Gateway]:
    with review_gateway(
        rig,
        tmp_path_factory.mktemp("review-notices"),
        module_store,
        notify={"include_subject": True},
    ) as gateway:
        yield gateway


@pytest.fixture
def gw(module_gw: Gateway) -> Gateway:
    """The module's gateway, with `[notify] include_subject = true`; its upstream without
    failures, and with nothing recorded."""
    assert module_gw.proc.running, module_gw.proc.output()
    module_gw.upstream.reset()
    module_gw.upstream.clear()
    return module_gw


def decide_two(gw: Gateway) -> tuple[str, str]:
    """Two holds of a message with SUBJECT and BODY: one released, one rejected."""
    cli = cli_for(gw)
    released, _ = send_held(gw, subject=SUBJECT, body=BODY)
    rejected, _ = send_held(gw, subject=SUBJECT, body=BODY)
    cli.ok("held", "release", released, "--reason", "Confirmed by phone", "--by", "Jo")
    cli.ok("held", "reject", rejected, "--reason", "Use the portal", "--by", "Jo")
    return released, rejected


def subjects(gw: Gateway, hold: str) -> list[str]:
    return [notice_subject(n) for n in notices_of(gw, hold)]


def test_with_include_subject_the_notices_show_the_subject_but_never_the_body(
    gw: Gateway,
) -> None:
    released, rejected = decide_two(gw)
    # The two held notices are one event's (their order between them is not promised),
    # both before the decision's.
    told = subjects(gw, released)
    assert sorted(told[:2]) == [
        f"Held for safeguarding review: {SUBJECT}",
        f"Safeguarding hold to review: {released}: {SUBJECT}",
    ]
    assert told[2:] == [f"Released after review: {SUBJECT}"]
    assert subjects(gw, rejected)[-1] == f"Not sent after review: {SUBJECT}"
    for hold in (released, rejected):
        for notice in notices_of(gw, hold):
            body = readable(notice).split("\n\n", 1)[1]
            for words in (*BODY_WORDS, "Zebedee"):
                assert words not in body, body


def test_a_notice_is_sent_once_when_serve_and_a_command_send_at_the_same_time(
    gw: Gateway,
) -> None:
    # Both once read the due notices and marked each sent only after the upstream's reply,
    # with no claim on it meanwhile: the sender and the reviewers got every notice twice.
    cli = cli_for(gw)
    # The upstream takes its time over each notice; serve starts on the new hold's at once.
    gw.upstream.data_delay = 1.0
    hold = hold_id(gw.send(SENDER, ["officer@nosts.test"], message(to=["officer@nosts.test"])))
    assert gw.upstream.wait_data(SENDER, 10), gw.proc.output()
    # Meanwhile a reviewer runs a command that also sends what is queued.
    sweep = cli.run("held", "sweep")
    assert sweep.code == 0, str(sweep)
    gw.upstream.data_delay = 0.0
    assert gw.upstream.wait_data(REVIEWER, 10)
    wait_notices_of(gw, hold, 2)
    time.sleep(0.3)  # and a second copy, if there is one
    kinds = subjects(gw, hold)
    assert sorted(kinds) == sorted(set(kinds)), f"sent more than once: {kinds}\n{sweep}"
    assert len(kinds) == 2, kinds
