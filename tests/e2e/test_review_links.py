"""Send by secure link end to end, from the reviewer's side: a hold made by flagged mail sent
through `gateway serve`, sent by secure link with `gateway held send-link`, listed and revoked;
what reaches the recording upstream (the recipient's link email with nothing of the message,
the sender's notice); the gateway doing it itself for [secure_link] automatic_for; and the
notice of a link nobody opened. The token is in the recipient's email and nowhere else: not in
any log line, command output or audit entry.

The portal that opens the links is tested in tests/portal/.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator

import pytest

from rig import Rig
from rig.gatewayproc import Gateway, readable
from rig.heldcli import (
    INSECURE,
    REVIEWER,
    SENDER,
    ReviewCli,
    cli_for,
    notices_of,
    review_gateway,
    send_held,
    state,
    wait_events,
    wait_notices_of,
)
from rig.sharedstore import SharedStore
from rig.upstream import Message

pytestmark = [pytest.mark.e2e, pytest.mark.both_backends]

PORTAL = "https://portal.school.test"
TESTING = "carer@testing.test"  # an MTA-STS policy in testing mode: held for sts-mode-testing
RATIONALE = "Foster carer has no secure email; the link keeps it off the open wire"
SUBJECT = "Referral for Zebedee Quokka"
BODY = "Zebedee Quokka lives at 12 Oak Street with his grandmother.\r\n"
PRIVATE = ("Zebedee", "Quokka", "Oak Street", "grandmother")
LINK_SUBJECT = "A secure message from"
TOKEN = re.compile(rf"{re.escape(PORTAL)}/m/([A-Za-z0-9_-]{{43}})")
LINK_ID = re.compile(r"\((L[A-Z2-7]{10})\)")


@pytest.fixture(scope="module")
def gw(
    rig: Rig, tmp_path_factory: pytest.TempPathFactory, module_store: SharedStore | None
) -> Iterator[Gateway]:
    workdir = tmp_path_factory.mktemp("review-links")
    settings = {"portal": {"public_url": PORTAL}, "notify": {"organisation": "Oak School"}}
    with review_gateway(rig, workdir, module_store, **settings) as gateway:
        yield gateway


@pytest.fixture
def cli(gw: Gateway) -> ReviewCli:
    assert gw.proc.running, gw.proc.output()
    gw.upstream.reset()
    return cli_for(gw)


def token_of(email: Message) -> str:
    match = TOKEN.search(readable(email))
    assert match, readable(email)
    return match.group(1)


def assert_nowhere(gw: Gateway, cli: ReviewCli, token: str, hold: str) -> None:
    """The token is in none of the gateway's log lines and no audit entry or command output."""
    assert token not in gw.proc.output()
    for args in (("audit", "list", "--json"), ("held", "show", hold, "--json")):
        ran = cli.ok(*args)
        assert token not in ran.stdout + ran.stderr, str(ran)
    assert token not in json.dumps(state(gw, hold)[1])


def send_link(cli: ReviewCli, hold: str, by: str = "Jo Smith (DSL)") -> list[str]:
    """`held send-link`; the link ids it names."""
    ran = cli.ok("held", "send-link", hold, "--reason", RATIONALE, "--by", by)
    assert ran.stdout.startswith(f"sent {hold} by secure link to "), str(ran)
    return LINK_ID.findall(ran.stdout)


def test_send_link_emails_the_recipient_a_link_and_tells_the_sender(
    gw: Gateway, cli: ReviewCli
) -> None:
    hold, original = send_held(gw, subject=SUBJECT, body=BODY)
    [link_id] = send_link(cli, hold)

    [email] = notices_of(gw, hold, LINK_SUBJECT)
    assert email.rcpt_tos == (INSECURE,)
    text = readable(email)
    assert "Subject: A secure message from Oak School\n" in text, text
    assert f"{SENDER} at Oak School has sent you a message by secure link" in text, text
    assert "one-time code" in text, text
    assert f"Reference: {link_id}" in text, text
    for words in PRIVATE:
        assert words not in text, text
    token = token_of(email)
    # The message itself never went to the recipient by email.
    assert gw.relayed(of=original) == []

    [linked] = notices_of(gw, hold, "Sent by secure link")
    assert linked.rcpt_tos == (SENDER,)
    said = readable(linked)
    assert f"(reference {hold}) was sent by secure link by Jo Smith (DSL) to:" in said, said
    assert f"  {INSECURE} (until " in said, said
    assert "You will be told when each of them first opens it" in said, said
    for words in PRIVATE:
        assert words not in said, said

    entry, trail = state(gw, hold)
    assert (entry["status"], entry["decided_by"], entry["decision"]) == (
        "linked",
        "Jo Smith (DSL)",
        RATIONALE,
    )
    events = [(e["event"], e["actor"], e["data"].get("kind")) for e in trail]
    assert events[3:] == [
        ("link-sent", "Jo Smith (DSL)", None),
        ("notice-sent", "gateway", "link"),
        ("notice-sent", "gateway", "linked"),
    ], events
    [sent] = [e for e in trail if e["event"] == "link-sent"]
    assert sent["data"]["links"] == [{"link": link_id, "recipient": INSECURE}]
    assert sent["data"]["automatic"] is False

    [link] = cli.ok("held", "links", hold, "--json").json()
    assert (link["id"], link["recipient"], link["state"]) == (link_id, INSECURE, "active")
    assert (link["created_by"], link["codes_sent"], link["opened_at"]) == (
        "Jo Smith (DSL)",
        0,
        None,
    )
    shown = cli.ok("held", "show", hold).stdout
    assert f"Secure links:\n  {link_id} to {INSECURE}: active until " in shown, shown
    assert "not opened, 0 codes sent" in shown, shown
    assert [h["id"] for h in cli.holds("--status", "linked")].count(hold) == 1

    listed = cli.ok("audit", "list", "--hold", hold).stdout
    assert f"Sent by secure link by Jo Smith (DSL) to {INSECURE} ({link_id})" in listed, listed
    assert "The secure link was emailed: " + INSECURE in listed, listed
    assert_nowhere(gw, cli, token, hold)


def test_a_hold_is_decided_once_whichever_way(gw: Gateway, cli: ReviewCli) -> None:
    hold, original = send_held(gw)
    send_link(cli, hold)
    for decision in ("send-link", "release", "reject"):
        ran = cli.run("held", decision, hold, "--reason", "second thoughts", "--by", "Sam")
        assert ran.code == 2, str(ran)
        assert f"{hold} is linked" in ran.stderr, str(ran)
    assert len(notices_of(gw, hold, LINK_SUBJECT)) == 1
    assert gw.relayed(of=original) == []
    assert state(gw, hold)[0]["decided_by"] == "Jo Smith (DSL)"


@pytest.mark.parametrize(
    ("args", "env", "said"),
    [
        (("--reason", "  \t "), {}, "needs a written rationale"),
        (("--reason", RATIONALE), {"GATEWAY_PORTAL_PUBLIC_URL": ""}, "needs [portal] public_url"),
    ],
    ids=["no-rationale", "no-public-url"],
)
def test_send_link_refuses_and_leaves_the_hold_held(
    gw: Gateway, cli: ReviewCli, args: tuple[str, ...], env: dict[str, str], said: str
) -> None:
    hold, _ = send_held(gw)
    ran = cli.run("held", "send-link", hold, *args, "--by", "Jo", env=env)
    assert ran.code == 2, str(ran)
    assert said in ran.stderr, str(ran)
    assert state(gw, hold)[0]["status"] == "held"
    assert cli.ok("held", "links", hold).stdout == f"{hold} has no secure links\n"
    assert notices_of(gw, hold, LINK_SUBJECT) == []


def test_revoke_link_records_who_and_why_once_and_emails_nobody(
    gw: Gateway, cli: ReviewCli
) -> None:
    hold, _ = send_held(gw)
    [link_id] = send_link(cli, hold)
    before = len(gw.notices())

    ran = cli.ok("held", "revoke-link", link_id, "--reason", "Wrong carer", "--by", "Sam (DSL)")
    assert ran.stdout == f"revoked {link_id} to {INSECURE}; the portal now says so\n", str(ran)
    again = cli.run("held", "revoke-link", link_id, "--reason", "Again", "--by", "Sam (DSL)")
    assert again.code == 2, str(again)
    assert f"{link_id} was revoked already, by Sam (DSL)" in again.stderr, str(again)
    unknown = cli.run("held", "revoke-link", "LAAAAAAAAAA", "--reason", "x", "--by", "Sam")
    assert unknown.code == 2, str(unknown)
    assert "no secure link 'LAAAAAAAAAA'" in unknown.stderr, str(unknown)

    [link] = cli.ok("held", "links", hold, "--json").json()
    assert (link["state"], link["revoked_by"]) == ("revoked", "Sam (DSL)")
    assert (
        f"{link_id} to {INSECURE}: revoked by Sam (DSL) at " in cli.ok("held", "show", hold).stdout
    )
    trail = state(gw, hold)[1]
    [revoked] = [e for e in trail if e["event"] == "link-revoked"]
    assert (revoked["actor"], revoked["data"]["reason"]) == ("Sam (DSL)", "Wrong carer")
    assert len(gw.notices()) == before  # the recipient is not emailed


# ---- the gateway's own: [secure_link] automatic_for, and the unopened notice


@pytest.fixture(scope="module")
def auto_gw(
    rig: Rig,
    tmp_path_factory: pytest.TempPathFactory,
    module_databases: Callable[[], SharedStore | None],
) -> Iterator[Gateway]:
    settings = {
        "portal": {"public_url": PORTAL},
        "secure_link": {"automatic_for": ["sts-no-record"], "unopened_after": "1s"},
        "review": {"sweep_interval": "0.3s"},
    }
    workdir = tmp_path_factory.mktemp("review-links-auto")
    with review_gateway(rig, workdir, module_databases(), **settings) as gateway:
        yield gateway


def test_automatic_for_sends_by_link_at_once_and_tells_the_reviewers(auto_gw: Gateway) -> None:
    gw = auto_gw
    cli = cli_for(gw)
    hold_id, original = send_held(gw, subject=SUBJECT, body=BODY)
    wait_events(gw, hold_id, "notice-sent", 3)
    entry, trail = state(gw, hold_id)
    assert (entry["status"], entry["decided_by"], entry["decision"]) == (
        "linked",
        "gateway",
        "automatic: sts-no-record",
    )
    kinds = [e["data"]["kind"] for e in trail if e["event"] == "notice-sent"]
    assert sorted(kinds[:3]) == ["link", "linked", "linked-reviewers"], trail
    [email] = notices_of(gw, hold_id, LINK_SUBJECT)
    assert email.rcpt_tos == (INSECURE,)
    [reviewers] = notices_of(gw, hold_id, "Sent by secure link automatically")
    assert reviewers.rcpt_tos == (REVIEWER,)
    assert "as [secure_link] automatic_for says for its reasons" in readable(reviewers)
    [linked] = [n for n in notices_of(gw, hold_id, "Sent by secure link") if n != reviewers]
    assert linked.rcpt_tos == (SENDER,)
    assert "was sent by secure link automatically to:" in readable(linked)
    # Told it went by link, not asked to wait for a review.
    assert notices_of(gw, hold_id, "Held for safeguarding review") == []
    assert notices_of(gw, hold_id, "Safeguarding hold to review") == []
    assert gw.relayed(of=original) == []
    assert_nowhere(gw, cli, token_of(email), hold_id)


def test_a_hold_not_every_recipient_of_which_is_covered_waits_for_a_reviewer(
    auto_gw: Gateway,
) -> None:
    hold, _ = send_held(auto_gw, to=(INSECURE, TESTING))
    entry, trail = state(auto_gw, hold)
    assert entry["status"] == "held"
    assert "link-sent" not in [e["event"] for e in trail]
    assert len(notices_of(auto_gw, hold, "Safeguarding hold to review")) == 1


def test_a_link_nobody_opens_is_followed_up_once(auto_gw: Gateway) -> None:
    gw = auto_gw
    cli = cli_for(gw)
    hold, _ = send_held(gw, to=(TESTING,))  # not covered: a reviewer sends it
    [link_id] = send_link(cli, hold)

    [unopened] = wait_notices_of(gw, hold, 1, "Not opened yet", timeout=20)
    assert unopened.rcpt_tos == (SENDER, REVIEWER)
    text = readable(unopened)
    assert f"was sent by secure link to {TESTING}" in text, text
    assert "follow it up another way" in text, text
    wait_events(gw, hold, "link-unopened", 1)
    # Sweeps after it, the serve's and one by hand, say nothing more about it.
    ran = cli.ok("held", "sweep")
    assert ran.code == 0
    gw.proc.wait_event("secure links not opened", links=[link_id])
    trail = state(gw, hold)[1]
    assert [e["event"] for e in trail].count("link-unopened") == 1
    [entry] = [e for e in trail if e["event"] == "link-unopened"]
    assert entry["data"]["told"] == [SENDER, REVIEWER]
    assert len(notices_of(gw, hold, "Not opened yet")) == 1
    [link] = cli.ok("held", "links", hold, "--json").json()
    assert link["unopened_noticed_at"] is not None
