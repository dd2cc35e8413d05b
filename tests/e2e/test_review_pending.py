"""A release that cannot finish at once, end to end: the upstream down, or the releasing
command killed with SIGKILL while the upstream has the message but has not answered. The
decision stands (status "releasing"); re-running the same command, or the sweep of
`gateway serve`, finishes it; the upstream ends up with exactly one copy.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rig import Rig
from rig.gatewayproc import Gateway, readable, split_trace
from rig.heldcli import (
    INSECURE,
    SENDER,
    Ran,
    ReviewCli,
    cli_for,
    notices_of,
    review_gateway,
    send_held,
    state,
    status,
    wait_notices_of,
)
from rig.sharedstore import SharedStore

NewStore = Callable[[], SharedStore | None]

pytestmark = [pytest.mark.e2e, pytest.mark.both_backends]

RATIONALE = "Police liaison officer asked for it in writing; confirmed the address by phone"
BY = "Jo Smith (DSL)"
RELEASE = ("held", "release", "--reason", RATIONALE, "--by", BY)


@pytest.fixture(scope="module")
def quiet_gateway(
    rig: Rig, tmp_path_factory: pytest.TempPathFactory, module_databases: NewStore
) -> Iterator[Gateway]:
    """No sweep of its own during the tests: only the command finishes a release."""
    folder = tmp_path_factory.mktemp("review-pending")
    with review_gateway(rig, folder, module_databases()) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def sweeping_gateway(
    rig: Rig, tmp_path_factory: pytest.TempPathFactory, module_databases: NewStore
) -> Iterator[Gateway]:
    """A sweep every second, which retries pending releases (its own database: the quiet
    gateway's holds are not its to sweep)."""
    with review_gateway(
        rig,
        tmp_path_factory.mktemp("review-sweeping"),
        module_databases(),
        review={"sweep_interval": "1s"},
    ) as gateway:
        yield gateway


def fresh(gateway: Gateway) -> Gateway:
    """The gateway running, its upstream up, without failures, and with nothing recorded."""
    if not gateway.proc.running:
        gateway.proc.start()
    gateway.upstream.start()
    gateway.upstream.reset()
    gateway.upstream.clear()
    return gateway


@pytest.fixture
def quiet(quiet_gateway: Gateway) -> Gateway:
    return fresh(quiet_gateway)


@pytest.fixture
def sweeping(sweeping_gateway: Gateway) -> Gateway:
    return fresh(sweeping_gateway)


def release(cli: ReviewCli, hold: str) -> Ran:
    return cli.run(*RELEASE[:2], hold, *RELEASE[2:])


def released_state(gw: Gateway, hold: str) -> list[str]:
    entry, trail = state(gw, hold)
    assert entry["status"] == "released", entry
    assert entry["delivered"] == [INSECURE]
    assert entry["decided_by"] == BY
    assert entry["decision"] == RATIONALE  # the first rationale stands
    assert entry["last_error"] is None
    return [e["event"] for e in trail]


def one_copy(gw: Gateway, original: bytes) -> None:
    [copy] = gw.relayed(of=original)
    assert copy.rcpt_tos == (INSECURE,)
    trace = split_trace(copy.data, original)
    assert trace[1].startswith("X-Safeguarding-Gateway: released after review"), trace


# ---- the upstream down


def test_upstream_down_leaves_the_release_pending_and_running_it_again_finishes_it(
    quiet: Gateway,
) -> None:
    gw = quiet
    cli = cli_for(gw)
    hold, original = send_held(gw)
    gw.upstream.stop()

    ran = release(cli, hold)
    assert ran.code == 1, str(ran)
    assert f"release of {hold} is pending" in ran.stdout, str(ran)
    assert "The decision is recorded" in ran.stdout, str(ran)
    entry, trail = state(gw, hold)
    assert entry["status"] == "releasing"
    assert entry["decided_by"] == BY
    assert entry["last_error"], entry
    assert [e["event"] for e in trail].count("release-requested") == 1
    assert "released" not in [e["event"] for e in trail]
    # `held list` shows it as releasing, not held.
    assert hold in cli.ok("held", "list", "--status", "releasing").stdout

    gw.upstream.start()
    again = cli.run("held", "release", hold, "--reason", "a second thought", "--by", "Sam")
    assert again.code == 0, str(again)
    assert again.stdout == f"released {hold}: sent to {INSECURE}\n", str(again)
    one_copy(gw, original)
    events = released_state(gw, hold)
    assert events.count("release-requested") == 1
    assert events.count("released") == 1
    [notice] = notices_of(gw, hold, "Released after review")
    assert f"released by {BY}" in readable(notice)


def test_upstream_down_leaves_the_release_pending_and_serve_finishes_it(
    sweeping: Gateway,
) -> None:
    gw = sweeping
    cli = cli_for(gw)
    hold, original = send_held(gw)
    gw.upstream.stop()

    ran = release(cli, hold)
    assert ran.code == 1, str(ran)
    assert "is pending" in ran.stdout, str(ran)
    assert status(gw, hold) == "releasing"

    gw.upstream.start()
    [notice] = wait_notices_of(gw, hold, 1, "Released after review", timeout=15)
    assert notice.rcpt_tos == (SENDER,)
    one_copy(gw, original)
    events = released_state(gw, hold)
    assert events.count("released") == 1
    # The scheduler's sweep did it (its log line follows the notices it sent: wait for it).
    assert gw.proc.wait_event("sweep", released=[hold])


# ---- the releasing command killed


def kill_release_while_the_upstream_waits(
    gw: Gateway, cli: ReviewCli, hold: str, original: bytes, logdir: Path
) -> None:
    """Start `held release`, let it hand the message to the upstream, and kill it with
    SIGKILL before the upstream's reply to DATA: the upstream never commits that copy."""
    aborted = gw.upstream.aborted
    gw.upstream.data_delay = 30.0
    proc = cli.start(*RELEASE[:2], hold, *RELEASE[2:], logdir=logdir)
    try:
        assert gw.upstream.wait_data(INSECURE, 20), (logdir / "cli.stderr").read_text()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    assert gw.upstream.wait_aborted(aborted + 1)
    assert gw.relayed(of=original) == []
    gw.upstream.data_delay = 0.0
    entry, trail = state(gw, hold)
    assert entry["status"] == "releasing", entry
    assert [e["event"] for e in trail].count("release-requested") == 1
    assert "released" not in [e["event"] for e in trail]


def test_release_killed_midway_then_run_again_delivers_once(quiet: Gateway, tmp_path: Path) -> None:
    gw = quiet
    cli = cli_for(gw)
    hold, original = send_held(gw)
    kill_release_while_the_upstream_waits(gw, cli, hold, original, tmp_path / "killed")

    again = release(cli, hold)
    assert again.code == 0, str(again)
    assert again.stdout == f"released {hold}: sent to {INSECURE}\n", str(again)
    one_copy(gw, original)
    events = released_state(gw, hold)
    assert events.count("release-requested") == 1
    assert events.count("released") == 1
    assert len(notices_of(gw, hold, "Released after review")) == 1
    # Once released, running it yet again sends nothing more.
    assert release(cli, hold).code == 2
    one_copy(gw, original)


def test_release_killed_midway_is_finished_by_the_sweep_of_serve(
    sweeping: Gateway, tmp_path: Path
) -> None:
    gw = sweeping
    cli = cli_for(gw)
    hold, original = send_held(gw)
    # Kill the release while no sweep can race it, then start `gateway serve` again: its
    # sweep finds the release that its dead owner left.
    gw.proc.stop()
    kill_release_while_the_upstream_waits(gw, cli, hold, original, tmp_path / "killed")
    gw.proc.start()

    [notice] = wait_notices_of(gw, hold, 1, "Released after review", timeout=15)
    assert notice.rcpt_tos == (SENDER,)
    one_copy(gw, original)
    events = released_state(gw, hold)
    assert events.count("release-requested") == 1
    assert events.count("released") == 1
    assert gw.proc.wait_event("sweep", timeout=15, released=[hold])  # logged after the notice
