"""`gateway held ...` and `gateway audit ...` as a reviewer runs them: the console script as a
subprocess, with the same --config as a running `gateway serve`.

:class:`ReviewCli` runs one command and returns a :class:`Ran` (exit status, stdout, stderr,
and the command line, all of which an assertion message shows); :meth:`ReviewCli.start` starts
one without waiting, for the tests that kill it with SIGKILL halfway. :func:`review_gateway`
starts a `gateway serve` with its own upstream, for a module to share; :func:`send_held` makes
a hold through it. :func:`state` reads a hold and its trail straight from the store, to check
what a command did without paying for another command.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import json
import re
import sqlite3
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rig.cli import clean_env, gateway_script
from rig.gatewayproc import Gateway, Reply, message, start_gateway
from rig.rig import Rig
from rig.sharedstore import SharedStore
from rig.upstream import Message, Upstream

CLI_TIMEOUT = 60.0
SENDER = "head@school.test"
INSECURE = "officer@nosts.test"  # nosts.test publishes no MTA-STS policy: held
SECURE = "colleague@secure.test"  # MTA-STS enforce covering every MX: relayed at once
REVIEWER = "dsl@school.test"
ESCALATION_CONTACT = "head-of-safeguarding@school.test"
# What `--by` falls back to: the operating-system user, from LOGNAME (getpass.getuser()).
OS_USER = "os-reviewer"

# Review settings for the tests: a reviewer and an escalation contact to notify, and a sweep
# that runs at start-up and then not again for the length of a test run, so nothing but the
# test decides when a hold escalates, expires or has its release retried.
REVIEW = {
    "reviewers": [REVIEWER],
    "escalation_contacts": [ESCALATION_CONTACT],
    "sweep_interval": "1h",
}


@dataclass(frozen=True)
class Ran:
    """One finished command."""

    argv: tuple[str, ...]
    code: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return (
            f"$ gateway {' '.join(self.argv)}\nexit {self.code}\n"
            f"--- stdout\n{self.stdout}--- stderr\n{self.stderr}"
        )

    def json(self) -> Any:
        assert self.code == 0, str(self)
        return json.loads(self.stdout)


class ReviewCli:
    """`gateway ... --config CONFIG`, in CONFIG's folder; ``env`` is added to a clean
    environment (LOGNAME and USER name the operating-system user, OS_USER)."""

    def __init__(self, config: Path, env: Mapping[str, str] | None = None) -> None:
        self.config = config
        self.env = {"LOGNAME": OS_USER, "USER": OS_USER, **(env or {})}

    def _argv(self, args: tuple[str, ...], config_first: bool = False) -> list[str]:
        # After the command words, where every version takes it (`gateway --config FILE held
        # list` once lost FILE; test_review_show.py checks that form).
        config = ["--config", str(self.config)]
        if config_first:
            return [str(gateway_script()), *config, *args]
        return [str(gateway_script()), *args, *config]

    def run(
        self, *args: str, env: Mapping[str, str] | None = None, config_first: bool = False
    ) -> Ran:
        done = subprocess.run(
            self._argv(args, config_first),
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT,
            env=clean_env({**self.env, **(env or {})}),
            # Not the repository: a command that missed its config would make ./var there.
            cwd=self.config.parent,
            check=False,
        )
        return Ran(tuple(args), done.returncode, done.stdout, done.stderr)

    def run_all(self, commands: Sequence[Sequence[str]]) -> list[Ran]:
        """Several commands at once (each takes a third of a second just to start)."""
        with ThreadPoolExecutor(4) as pool:
            return list(pool.map(lambda args: self.run(*args), commands))

    def ok(self, *args: str) -> Ran:
        """Run, and fail the test with the command's output unless it exits 0."""
        ran = self.run(*args)
        assert ran.code == 0, str(ran)
        return ran

    def start(self, *args: str, logdir: Path) -> subprocess.Popen[bytes]:
        """Start a command without waiting for it (its output goes to files in `logdir`)."""
        logdir.mkdir(parents=True, exist_ok=True)
        with (logdir / "cli.stdout").open("wb") as out, (logdir / "cli.stderr").open("wb") as err:
            return subprocess.Popen(
                self._argv(args),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=clean_env(self.env),
                cwd=self.config.parent,
            )

    def holds(self, *filters: str) -> list[dict[str, Any]]:
        """`held list --json` with `filters` (default: --status all)."""
        result: list[dict[str, Any]] = self.run(
            "held", "list", "--json", *(filters or ("--status", "all"))
        ).json()
        return result


_HOLD_ID = re.compile(r"held for review as ([0-9a-f]+)")


def hold_id(reply: Reply) -> str:
    """The hold a 250 reply names."""
    assert reply.code == 250, reply
    match = _HOLD_ID.search(reply.text)
    assert match, f"the reply names no hold: {reply}"
    return match.group(1)


def send_held(
    gateway: Gateway,
    sender: str = SENDER,
    to: tuple[str, ...] = (INSECURE,),
    mail_options: tuple[str, ...] = (),
    rcpt_options: tuple[str, ...] = (),
    **fields: Any,
) -> tuple[str, bytes]:
    """Send a flagged message through `gateway serve` (`fields` go to rig.gatewayproc.message)
    and return the id of the hold it made, and the message's bytes. Waits until the hold's two
    notices (to the sender, to the reviewers) are sent, so that a command run next does not
    find them still in the outbox."""
    original = message(sender=sender, to=to, **fields)
    reply = gateway.send(sender, to, original, mail_options, rcpt_options)
    held = hold_id(reply)
    # Sent, and their sending recorded in the trail (just after the upstream's reply).
    wait_events(gateway, held, "notice-sent", 2)
    return held, original


def wait_events(gateway: Gateway, hold: str, event: str, count: int, timeout: float = 10.0) -> None:
    """Wait until the trail holds ``count`` ``event`` entries about ``hold``; fail if not."""
    deadline = time.monotonic() + timeout
    while events(gateway, hold).count(event) < count:
        assert time.monotonic() < deadline, f"{count} {event!r} entries of {hold}: not there"
        time.sleep(0.02)


def notice_subject(notice: Message) -> str:
    """A notice's Subject, unfolded (a long one is folded onto the next line)."""
    parsed = email.message_from_bytes(notice.data, policy=email.policy.default)
    return str(parsed.get("Subject", "")).strip()


def notices_of(gateway: Gateway, hold: str, subject: str = "") -> list[Message]:
    """The notices the upstream took about `hold`, optionally only those whose Subject
    starts with `subject`."""
    return [
        m
        for m in gateway.notices()
        if f"X-Safeguarding-Gateway: notice; hold={hold}\r\n".encode() in m.data
        and notice_subject(m).startswith(subject)
    ]


def wait_notices_of(
    gateway: Gateway, hold: str, count: int, subject: str = "", timeout: float = 10.0
) -> list[Message]:
    deadline = time.monotonic() + timeout
    while len(found := notices_of(gateway, hold, subject)) < count:
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    return found


def cli_for(gateway: Gateway, env: Mapping[str, str] | None = None) -> ReviewCli:
    return ReviewCli(gateway.proc.config, env)


def audit_db(gateway: Gateway) -> sqlite3.Connection:
    """The embedded hold store's database, opened directly (to tamper with the trail)."""
    assert gateway.store is None, "the SQLite file of a gateway on the shared store"
    return sqlite3.connect(gateway.held_db, timeout=10, isolation_level=None)


def proofs(
    gateway: Gateway, message_id: str, count: int = 1, timeout: float = 10.0
) -> list[dict[str, Any]]:
    """The trail's ``delivered`` entries (proof of delivery) of the message ``message_id``,
    once there are ``count`` of them, or as many as there are when ``timeout`` runs out."""
    deadline = time.monotonic() + timeout
    while True:
        rows = gateway.query("SELECT data FROM audit WHERE event = 'delivered' ORDER BY seq")
        found = [d for (text,) in rows if (d := json.loads(text))["message_id"] == message_id]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


# ---- the review state read straight from the store: quicker than a command (each takes a
# good third of a second to start), for checking what a command under test did.


def state(gateway: Gateway, hold: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The hold's row (the fields `held list --json` shows for a decision) and its trail."""
    rows = gateway.query(
        "SELECT status, decided_by, decision, delivered, refused, escalated_at, purged_at,"
        " last_error FROM holds WHERE id = ?",
        (hold,),
    )
    assert rows, f"no hold {hold}"
    [row] = rows
    entries = gateway.query(
        "SELECT seq, event, hold_id, actor, data FROM audit WHERE hold_id = ? ORDER BY seq",
        (hold,),
    )
    status, by, decision, delivered, refused, escalated_at, purged_at, last_error = row
    entry = {
        "status": status,
        "decided_by": by or None,
        "decision": decision or None,
        "delivered": json.loads(delivered),
        "refused": json.loads(refused),
        "escalated": escalated_at is not None,
        "purged": purged_at is not None,
        "last_error": last_error or None,
    }
    trail = [
        {"seq": seq, "event": event, "hold_id": hold_id, "actor": actor, "data": json.loads(data)}
        for seq, event, hold_id, actor, data in entries
    ]
    return entry, trail


def has_body(gateway: Gateway, hold: str) -> bool:
    """Whether the hold's sealed message is still kept (a row of hold_bodies)."""
    return bool(gateway.query("SELECT 1 FROM hold_bodies WHERE hold_id = ?", (hold,)))


def status(gateway: Gateway, hold: str) -> str:
    return str(state(gateway, hold)[0]["status"])


def events(gateway: Gateway, hold: str) -> list[str]:
    return [e["event"] for e in state(gateway, hold)[1]]


@contextlib.contextmanager
def review_gateway(
    rig: Rig, workdir: Path, store: SharedStore | None = None, **overrides: Mapping[str, object]
) -> Iterator[Gateway]:
    """`gateway serve` with its own recording upstream and the tests' review settings (each
    keyword updates one config table), on `store` if given; stopped after, and it must exit
    0."""
    overrides = {**overrides, "review": {**REVIEW, **overrides.get("review", {})}}
    # The web UI is not under test here; and every gateway would want the same default port.
    overrides = {"web": {"enabled": False}, **overrides}
    upstream = Upstream().start()
    try:
        gateway = start_gateway(rig, workdir, upstream, None, store=store, **overrides)
        try:
            yield gateway
        finally:
            code = gateway.proc.stop()
            if not gateway.proc.forced:
                assert code == 0, f"gateway serve exited {code}\n{gateway.proc.output()}"
    finally:
        upstream.close()
