"""The audit trail end to end: every flagged message in it (relayed at once with the facts that
made the recipient secure, or held with its reasons), unflagged mail not; `gateway audit
verify` on an intact trail, and after a row is edited or deleted with the sqlite3 tool;
`gateway audit export` as CSV and JSON, never with a body or a subject.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.core.auditchain import legacy_digest
from rig import Rig
from rig.gatewayproc import Gateway, message
from rig.heldcli import (
    INSECURE,
    SECURE,
    SENDER,
    ReviewCli,
    audit_db,
    cli_for,
    review_gateway,
    send_held,
    state,
    wait_events,
)
from rig.ports import LOOPBACK, free_port
from rig.sharedstore import SharedStore

pytestmark = [pytest.mark.e2e, pytest.mark.both_backends]

SUBJECT = "[SECURE] Referral for Zebedee Quokka"
BODY = "Zebedee Quokka lives at 12 Oak Street with his grandmother.\r\n"
METRICS_TOKEN = "w" * 40
PRIVATE = ("Zebedee", "Quokka", "Oak Street", "grandmother")


@pytest.fixture(scope="module")
def gw(
    rig: Rig, tmp_path_factory: pytest.TempPathFactory, module_store: SharedStore | None
) -> Iterator[Gateway]:
    with review_gateway(rig, tmp_path_factory.mktemp("review-audit"), module_store) as gateway:
        yield gateway


@pytest.fixture
def cli(gw: Gateway) -> ReviewCli:
    assert gw.proc.running, gw.proc.output()
    gw.upstream.reset()
    return cli_for(gw)


def entries(gw: Gateway) -> list[dict[str, Any]]:
    """The whole trail, straight from the store."""
    rows = gw.query("SELECT seq, event, hold_id, actor, data, hash FROM audit ORDER BY seq")
    return [
        {"seq": s, "event": e, "hold_id": h, "actor": a, "data": json.loads(d), "hash": x}
        for s, e, h, a, d, x in rows
    ]


def about(gw: Gateway, original: bytes) -> list[dict[str, Any]]:
    """The entries that name the message (by its Message-ID) in their data."""
    mid = original.split(b"Message-ID: ")[1].split(b"\r\n")[0].decode()
    return [e for e in entries(gw) if mid in json.dumps(e["data"])]


def wait_about(gw: Gateway, original: bytes, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10
    while len(found := about(gw, original)) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


# ---- every flagged message is in the trail


def test_flagged_mail_relayed_at_once_is_in_the_trail_with_the_facts(gw: Gateway) -> None:
    original = message(to=[SECURE, "x@dane.test"])
    reply = gw.send(SENDER, [SECURE, "x@dane.test"], original)
    assert reply.code == 250, reply
    found = wait_about(gw, original, 4)
    # Its arrival, why it was relayed, and a proof of delivery per recipient (one transaction).
    events = [e["event"] for e in found]
    assert events == ["received", "relayed", "delivered", "delivered"], events
    [entry] = [e for e in found if e["event"] == "relayed"]
    assert (entry["event"], entry["hold_id"], entry["actor"]) == ("relayed", "", "gateway")
    data = entry["data"]
    assert data["sender"] == SENDER
    assert data["recipients"] == [SECURE, "x@dane.test"]
    assert data["findings"] == ["header: X-Safeguarding: yes"]
    assert data["queue_id"] in reply.text
    # Why each recipient domain was secure: MTA-STS in enforce mode covering every MX ...
    sts = data["facts"]["secure.test"]
    assert sts["verdict"] == "secure"
    assert sts["allowlist"]["status"] == "allowed"
    assert sts["mta_sts"]["policy"]["mode"] == "enforce"
    assert sts["mta_sts"]["policy"]["covers_mx"] is True
    assert sts["mx"]["hosts"]
    # ... or DANE, with the TLSA records it rests on.
    dane = data["facts"]["dane.test"]
    assert dane["verdict"] == "secure"
    assert dane["dane"]["hosts"][0]["tlsa"], dane["dane"]


def test_held_mail_is_in_the_trail_and_unflagged_mail_is_not(gw: Gateway) -> None:
    hold, original = send_held(gw, to=(SECURE, INSECURE))
    found = wait_about(gw, original, 4)
    assert [e["event"] for e in found] == ["received", "held", "relayed", "delivered"]
    [received, held, relayed, delivered] = found
    assert received["data"]["recipients"] == [SECURE, INSECURE]
    assert delivered["data"]["recipient"] == SECURE
    assert relayed["event"] == "relayed"
    assert relayed["data"]["recipients"] == [SECURE]
    assert (held["event"], held["hold_id"], held["actor"]) == ("held", hold, "gateway")
    assert held["data"]["recipients"] == {INSECURE: ["sts-no-record"]}
    assert held["data"]["sender"] == SENDER

    unflagged = message(to=[SECURE, INSECURE], flagged=False)
    assert gw.send(SENDER, [SECURE, INSECURE], unflagged).code == 250
    gw.wait_relayed(1, of=unflagged)
    time.sleep(0.2)
    assert about(gw, unflagged) == []


# ---- export


def test_export_and_list_carry_the_events_never_a_body_or_subject(
    gw: Gateway, cli: ReviewCli
) -> None:
    # Flagged by the marker in the subject alone.
    released, _ = send_held(gw, to=(SECURE, INSECURE), subject=SUBJECT, body=BODY, flagged=False)
    rejected, _ = send_held(gw, subject=SUBJECT, body=BODY, flagged=False)
    shown = cli.ok("held", "show", released, "--by", "Jo")
    assert "Oak Street" in shown.stdout  # the reviewer sees it; the trail must not
    cli.ok("held", "release", released, "--reason", "Confirmed by phone", "--by", "Jo")
    cli.ok("held", "reject", rejected, "--reason", "Not needed", "--by", "Jo")

    today = dt.datetime.now(dt.UTC).date()
    tomorrow = (today + dt.timedelta(days=1)).isoformat()
    as_csv, as_json, listed, none_csv = cli.run_all(
        [
            ("audit", "export", "--format", "csv"),
            ("audit", "export", "--format", "json", "--since", today.isoformat()),
            ("audit", "list"),
            ("audit", "export", "--since", tomorrow),  # CSV by default
        ]
    )
    for ran in (as_csv, as_json, listed, none_csv):
        assert ran.code == 0, str(ran)
        for words in PRIVATE:
            assert words not in ran.stdout, (words, str(ran))

    stored = entries(gw)
    rows = list(csv.reader(io.StringIO(as_csv.stdout)))
    assert rows[0] == ["seq", "time", "event", "hold_id", "actor", "data", "hash"]
    assert [int(r[0]) for r in rows[1:]] == [e["seq"] for e in stored]
    assert [r[6] for r in rows[1:]] == [e["hash"] for e in stored]
    assert [json.loads(r[5]) for r in rows[1:]] == [e["data"] for e in stored]

    exported = json.loads(as_json.stdout)
    assert [e["seq"] for e in exported] == [e["seq"] for e in stored]
    assert set(exported[0]) == {"seq", "time", "event", "hold_id", "actor", "data", "prev", "hash"}
    assert exported[0]["time"].startswith(today.isoformat())

    def events(hold: str) -> list[tuple[str, str]]:
        return [(e["event"], e["actor"]) for e in exported if e["hold_id"] == hold]

    assert events(released) == [
        ("held", "gateway"),
        ("notice-sent", "gateway"),
        ("notice-sent", "gateway"),
        ("viewed", "Jo"),
        ("release-requested", "Jo"),
        ("delivered", "gateway"),  # the proof of how the released copy left
        ("released", "Jo"),
        ("notice-sent", "gateway"),
    ]
    assert events(rejected)[-2:] == [("rejected", "Jo"), ("notice-sent", "gateway")]
    [rejection] = [e for e in exported if e["hold_id"] == rejected and e["event"] == "rejected"]
    assert rejection["data"] == {"reason": "Not needed"}
    [held] = [e for e in exported if e["hold_id"] == released and e["event"] == "held"]
    assert held["data"]["findings"] == ["subject-marker: [SECURE]"]

    assert len(listed.stdout.splitlines()) == len(stored)
    assert none_csv.stdout == "seq,time,event,hold_id,actor,data,hash\n"  # header only


# ---- verify


def sqlite(db: Path, sql: str, seq: int) -> None:
    """Tamper with the store as someone with the file would: the sqlite3 tool (`sql` names
    the entry as :seq)."""
    subprocess.run(
        ["sqlite3", str(db), f".parameter set :seq {seq}", sql],
        check=True,
        capture_output=True,
        timeout=30,
    )


def test_every_new_head_is_logged_so_a_cut_off_end_shows(gw: Gateway, cli: ReviewCli) -> None:
    hold, _ = send_held(gw)
    ran = cli.run("held", "reject", hold, "--reason", "Not needed", "--by", "Jo")
    assert ran.code == 0, str(ran)
    stored = entries(gw)
    [rejected] = [e for e in stored if e["hold_id"] == hold and e["event"] == "rejected"]
    # The command names the trail's head after its work; the chain ties every earlier entry,
    # the rejection among them, to that hash, so cutting the rejection off would show.
    match = re.search(r"audit trail head: entry (\d+), ([0-9a-f]{64})", ran.stderr)
    assert match, ran.stderr
    seq, head = int(match.group(1)), match.group(2)
    assert seq >= rejected["seq"]
    assert {e["seq"]: e["hash"] for e in stored}[seq] == head


@pytest.mark.sqlite_only  # edits the SQLite file with the sqlite3 tool
def test_verify_names_an_edited_or_a_deleted_entry(gw: Gateway, cli: ReviewCli) -> None:
    # Last in the module: it breaks the module's trail (and mends it again after).
    hold, _ = send_held(gw)
    _, sent, *_ = [e["seq"] for e in state(gw, hold)[1]]
    stored = entries(gw)
    assert [e["seq"] for e in stored] == list(range(1, len(stored) + 1))
    assert sent < stored[-1]["seq"]  # an entry follows it: a deletion shows

    intact = cli.run("audit", "verify")
    assert intact.code == 0, str(intact)
    assert intact.stdout == (
        f"audit trail intact: {len(stored)} entries, head {stored[-1]['hash']}\n"
    )

    db = gw.held_db
    with contextlib.closing(audit_db(gw)) as reader:
        row = reader.execute("SELECT * FROM audit WHERE seq = ?", (sent,)).fetchone()
    sqlite(db, """UPDATE audit SET data = '{"kind": "held", "to": []}' WHERE seq = :seq""", sent)
    edited = cli.run("audit", "verify")
    assert edited.code == 1, str(edited)
    assert edited.stdout == (
        f"audit trail BROKEN at entry {sent}: was changed after it was written\n"
    ), str(edited)

    sqlite(db, "DELETE FROM audit WHERE seq = :seq", sent)
    deleted = cli.run("audit", "verify")
    assert deleted.code == 1, str(deleted)
    assert deleted.stdout == (
        f"audit trail BROKEN at entry {sent}: missing (the next entry is {sent + 1})\n"
    ), str(deleted)

    with contextlib.closing(audit_db(gw)) as mend:
        mend.execute("INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?, ?)", row)


# ---- the keyed chain and its witnessed head


@pytest.mark.sqlite_only  # edits the SQLite file with the sqlite3 tool
def test_an_edit_re_hashed_without_the_key_fails_verify(gw: Gateway, cli: ReviewCli) -> None:
    hold, _ = send_held(gw)  # its two notices sent: the trail's end stands still
    _, sent, *_ = [e["seq"] for e in state(gw, hold)[1]]
    with contextlib.closing(audit_db(gw)) as db:
        original = db.execute("SELECT * FROM audit WHERE seq >= ? ORDER BY seq", (sent,)).fetchall()
        prev = original[0][6]
        # Change the entry, then recompute every later hash by the published rule.
        for seq, at, event, hold_id, actor, data, _, _ in original:
            if seq == sent:
                data = json.dumps({"kind": "held", "to": []})
            digest = legacy_digest(seq, at, event, hold_id, actor, json.loads(data), prev)
            db.execute(
                "UPDATE audit SET data = ?, prev = ?, hash = ? WHERE seq = ?",
                (data, prev, digest, seq),
            )
            prev = digest
    try:
        edited = cli.run("audit", "verify")
        assert edited.code == 1, str(edited)
        assert edited.stdout == (
            f"audit trail BROKEN at entry {sent}: was changed after it was written\n"
        ), str(edited)
    finally:
        with contextlib.closing(audit_db(gw)) as mend:
            mend.executemany("REPLACE INTO audit VALUES (?, ?, ?, ?, ?, ?, ?, ?)", original)
    assert cli.run("audit", "verify").code == 0


@pytest.mark.sqlite_only  # edits the SQLite file with the sqlite3 tool
def test_verify_head_shows_the_newest_entries_were_cut_off(gw: Gateway, cli: ReviewCli) -> None:
    hold, _ = send_held(gw)
    cli.ok("held", "reject", hold, "--reason", "Not needed", "--by", "Jo")
    wait_events(gw, hold, "notice-sent", 3)  # the reject's notice too
    head = cli.ok("audit", "head").stdout.strip()
    seq, digest = head.split(":")
    assert {e["seq"]: e["hash"] for e in entries(gw)}[int(seq)] == digest
    held = cli.run("audit", "verify", "--head", head)
    assert held.code == 0, str(held)
    assert held.stdout.endswith(f"it contains head {head}\n"), str(held)

    with contextlib.closing(audit_db(gw)) as db:
        cut = db.execute("SELECT * FROM audit WHERE seq > ? ORDER BY seq", (int(seq) - 3,))
        newest = cut.fetchall()
        db.execute("DELETE FROM audit WHERE seq > ?", (int(seq) - 3,))
    try:
        # The chain itself still fits: only the witnessed head shows the cut.
        assert cli.run("audit", "verify").code == 0
        missing = cli.run("audit", "verify", "--head", head)
        assert missing.code == 1, str(missing)
        assert missing.stdout == (
            f"audit trail does NOT contain head {head}: entry {seq} is missing"
            f" (the trail ends at entry {int(seq) - 3})\n"
        ), str(missing)
    finally:
        with contextlib.closing(audit_db(gw)) as mend:
            mend.executemany("INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?, ?)", newest)
    bad = cli.run("audit", "verify", "--head", "12:nothex")
    assert bad.code == 2
    assert "is not a head (SEQ:HASH" in bad.stderr


def test_serve_logs_an_error_and_counts_it_when_the_head_goes_backwards(
    rig: Rig, tmp_path: Path
) -> None:
    port = free_port()
    web = {"enabled": True, "listen": f"{LOOPBACK}:{port}", "metrics_token": METRICS_TOKEN}
    with review_gateway(rig, tmp_path, web=web) as gateway:
        send_held(gateway)  # with its notices sent, the trail's end stands still
        last = entries(gateway)[-1]
        pid = gateway.proc.pid
        assert pid is not None
        os.kill(pid, signal.SIGUSR1)
        gateway.proc.wait_event("audit head", seq=last["seq"], head=last["hash"], reason="asked")

        with contextlib.closing(audit_db(gateway)) as db:
            db.execute("DELETE FROM audit WHERE seq > ?", (last["seq"] - 3,))
        os.kill(pid, signal.SIGUSR1)
        [error] = gateway.proc.wait_event("audit head went backwards")
        assert error["level"] == "error"
        witnessed = f"{last['seq']}:{last['hash']}"
        assert (error["seq"], error["witnessed"]) == (last["seq"] - 3, witnessed)
        scraped = httpx.get(
            f"http://{LOOPBACK}:{port}/metrics",
            headers={"authorization": f"Bearer {METRICS_TOKEN}"},
            timeout=10,
        )
        assert scraped.status_code == 200
        assert 'gateway_audit_head_problems_total{problem="backwards"} 1.0' in scraped.text
        # The witness file outside the database kept the head from before the cut.
        assert witnessed in (gateway.data_dir / "audit-witness.log").read_text()


def test_serve_sends_the_head_to_the_witnesses(rig: Rig, tmp_path: Path) -> None:
    witness = "dpo@school.test"
    with review_gateway(rig, tmp_path, audit={"witnesses": [witness]}) as gateway:
        send_held(gateway)  # a trail with a head (a new one has none), its notices sent
        pid = gateway.proc.pid
        assert pid is not None
        os.kill(pid, signal.SIGUSR1)  # or at the next [audit] head_interval
        [logged] = gateway.proc.wait_event("audit head sent to witnesses")
        [notice] = gateway.upstream.wait_for(1, where=lambda m: witness in m.rcpt_tos)
        text = notice.data.decode()
        assert f"gateway audit verify --head {logged['seq']}:{logged['head']}\r\n" in text
        assert "X-Safeguarding-Gateway: notice; audit-head" in text
        # The witness file remembers it was sent, so a restart does not send it again today.
        assert (gateway.data_dir / "audit-witness.log").read_text().rstrip().endswith(" sent")
