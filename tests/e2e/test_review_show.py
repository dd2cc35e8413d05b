"""`gateway held list` and `gateway held show` end to end: holds made by flagged mail sent
through `gateway serve` (against the rig's DNS and HTTPS servers), then read back with the
command line as a subprocess, as a reviewer would.

One gateway serves the whole module; each test sends its own messages (with its own sender
where a filter is checked), so the holds of other tests do not matter.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator, Sequence

import pytest

from rig import Rig
from rig.gatewayproc import Gateway, raw_session
from rig.heldcli import (
    INSECURE,
    SECURE,
    SENDER,
    ReviewCli,
    cli_for,
    hold_id,
    review_gateway,
    state,
    wait_events,
)
from rig.heldcli import send_held as send
from rig.sharedstore import SharedStore

pytestmark = [pytest.mark.e2e, pytest.mark.both_backends]

_counter = iter(range(1, 1_000_000))


@pytest.fixture(scope="module")
def gw(
    rig: Rig, tmp_path_factory: pytest.TempPathFactory, module_store: SharedStore | None
) -> Iterator[Gateway]:
    with review_gateway(rig, tmp_path_factory.mktemp("review-show"), module_store) as gateway:
        yield gateway


@pytest.fixture
def cli(gw: Gateway) -> ReviewCli:
    assert gw.proc.running, gw.proc.output()
    gw.upstream.reset()
    return cli_for(gw)


def raw(headers: Sequence[str], body: bytes, subject: str = "Pupil welfare update") -> bytes:
    """A flagged message with exactly these extra header lines and this body (CRLF)."""
    lines = [
        f"From: {SENDER}",
        f"To: {INSECURE}",
        f"Subject: {subject}",
        "Date: Thu, 26 Nov 2026 10:00:00 +0000",
        f"Message-ID: <review-show-{next(_counter)}-{time.monotonic_ns()}@school.test>",
        "MIME-Version: 1.0",
        "X-Safeguarding: yes",
        *headers,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def send_raw(gw: Gateway, data: bytes) -> str:
    return hold_id(gw.send(SENDER, [INSECURE], data))


def send_forwarded(gw: Gateway, data: bytes, *xforward: str) -> str:
    """Send ``data`` to SECURE and INSECURE as the organisation's MTA does with
    smtp_send_xforward_command=yes: XFORWARD commands naming its client, then the message."""
    with raw_session(gw.address) as (session, greeting):
        assert greeting.code == 220, greeting
        ehlo = session.expect("EHLO mta.school.test", 250)
        assert "XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE" in ehlo.text.split("\n")
        for line in xforward:
            session.expect(line, 250)
        session.expect(f"MAIL FROM:<{SENDER}>", 250)
        session.expect(f"RCPT TO:<{SECURE}>", 250)
        session.expect(f"RCPT TO:<{INSECURE}>", 250)
        session.expect("DATA", 354)
        held = hold_id(session.expect(data + b".\r\n", 250))
        session.expect("QUIT", 221)
    wait_events(gw, held, "notice-sent", 2)
    return held


# ---- held list


def test_list_shows_a_new_hold_as_a_table_and_as_json(gw: Gateway, cli: ReviewCli) -> None:
    sender = "list-table@school.test"
    hold, original = send(gw, sender=sender, to=(SECURE, INSECURE))
    table = cli.ok("held", "list").stdout
    header, *rows = table.splitlines()
    assert header.split() == ["ID", "AGE", "STATUS", "FROM", "TO", "REASONS"], table
    [row] = [r for r in rows if r.startswith(hold)]
    assert row.split() == [hold, row.split()[1], "held", sender, INSECURE, "sts-no-record"]
    assert re.fullmatch(r"0\.0h", row.split()[1]), row

    [entry] = [h for h in cli.holds() if h["id"] == hold]
    assert entry["status"] == "held"
    assert entry["sender"] == sender
    # Only the recipient that failed is held; the secure one was relayed at once.
    assert entry["recipients"] == [
        {"address": INSECURE, "domain": "nosts.test", "reasons": ["sts-no-record"]}
    ]
    assert entry["message_id"] == original.split(b"Message-ID: ")[1].split(b"\r\n")[0].decode()
    assert entry["findings"] == ["header: X-Safeguarding: yes"]
    assert entry["size"] == len(original)
    assert entry["decided_by"] is None
    assert entry["purged"] is False


def test_list_filters(gw: Gateway, cli: ReviewCli) -> None:
    nosts, _ = send(gw, sender="filter-a@school.test", to=("a@nosts.test",))
    unlisted, _ = send(gw, sender="filter-b@school.test", to=("b@unlisted.test",))
    testing, _ = send(gw, sender="filter-b@school.test", to=("c@testing.test",))
    ours = {nosts, unlisted, testing}

    def ids(*queries: Sequence[str]) -> list[set[str]]:
        commands = [("held", "list", "--json", *query) for query in queries]
        return [{h["id"] for h in ran.json()} & ours for ran in cli.run_all(commands)]

    assert ids(
        ("--sender", "FILTER-B"),  # part of the address, any case; --status held by default
        ("--domain", "TESTING.test"),
        ("--reason", "not-allowlisted", "--older-than", "0h"),
    ) == [{unlisted, testing}, {testing}, {unlisted}]
    # Nothing in this gateway's store is an hour old.
    assert cli.ok("held", "list", "--older-than", "1h").stdout == "no holds\n"
    # A bare number is refused: hours or days? The unit says.
    bare = cli.run("held", "list", "--older-than", "1")
    assert bare.code == 2, str(bare)
    assert "a number and s, m, h, d or w" in bare.stderr

    cli.ok("held", "reject", testing, "--reason", "Wrong recipient", "--by", "Jo")
    # The table takes the same filters; --status picks the decided ones.
    table = cli.ok("held", "list", "--status", "rejected", "--sender", "filter-").stdout
    _, row = table.splitlines()
    assert row.split()[:5] == [
        testing,
        row.split()[1],
        "rejected",
        "filter-b@school.test",
        "c@testing.test",
    ]


# ---- held show


def test_show_gives_envelope_reasons_headers_and_text(gw: Gateway, cli: ReviewCli) -> None:
    hold, _ = send(
        gw,
        sender="show-text@school.test",
        to=(SECURE, INSECURE, "x@unlisted.test"),
        subject="Strategy meeting notes",
        body="Notes about J.\r\nSecond line of the notes.\r\n",
    )
    shown = cli.ok("held", "show", hold, "--by", "Jo Smith (DSL)").stdout
    lines = shown.splitlines()
    assert lines[0].startswith(f"Hold {hold}: held, held "), shown
    assert "From (envelope): show-text@school.test" in lines
    held_for = lines[lines.index("Held recipients:") + 1 : lines.index("Held recipients:") + 3]
    assert held_for == [
        f"  {INSECURE}: nosts.test does not publish an MTA-STS policy in enforce mode"
        " (sts-no-record)",
        "  x@unlisted.test: unlisted.test is not on our secure-email list (not-allowlisted)",
    ]
    assert f"  {SECURE}" not in shown  # relayed, not held
    assert "Why flagged: header: X-Safeguarding: yes" in lines
    assert "  Subject: Strategy meeting notes" in lines
    assert "  From: show-text@school.test" in lines
    text = lines.index("Text (text/plain):")
    assert lines[text + 1 : text + 3] == ["Notes about J.", "Second line of the notes."]
    assert "Attachments: none" in lines

    # Who looked is part of the record.
    viewed = [e for e in state(gw, hold)[1] if e["event"] == "viewed"]
    assert [(e["actor"], e["data"]) for e in viewed] == [("Jo Smith (DSL)", {})]

    data = cli.run("held", "show", hold, "--json").json()
    assert data["id"] == hold
    assert data["status"] == "held"
    assert data["sender"] == "show-text@school.test"
    assert [r["address"] for r in data["recipients"]] == [INSECURE, "x@unlisted.test"]
    assert ["Subject", "Strategy meeting notes"] in data["headers"]
    assert data["text"] == "Notes about J.\nSecond line of the notes.\n"
    assert data["attachments"] == []
    # --by defaults to the operating-system user.
    viewers = [e["actor"] for e in state(gw, hold)[1] if e["event"] == "viewed"]
    assert viewers == ["Jo Smith (DSL)", "os-reviewer"]


def test_show_of_an_html_only_body_gives_its_text_without_markup(
    gw: Gateway, cli: ReviewCli
) -> None:
    markup = (
        "<html><head><title>Page title</title>"
        "<style>p { color: red }</style>"
        "<script>alert('pwned'); document.cookie</script></head>"
        '<body><p>Hello <b>Jo</b>,</p><p onclick="steal()">See the '
        '<a href="https://evil.example/x">plan</a> &amp; notes.</p>'
        "<img src=x onerror=alert(1)></body></html>\r\n"
    )
    hold = send_raw(gw, raw(["Content-Type: text/html; charset=utf-8"], markup.encode()))
    shown = cli.ok("held", "show", hold, "--by", "Jo").stdout
    lines = shown.splitlines()
    text = lines.index("Text (text/html (as text)):")
    assert lines[text + 1 : text + 3] == ["Hello Jo,", "See the plan & notes."], shown
    body = "\n".join(lines[text:])
    for leftover in ("<", ">", "alert", "document.cookie", "color: red", "Page title", "evil"):
        assert leftover not in body, (leftover, shown)


def test_show_names_attachments_with_their_sizes(gw: Gateway, cli: ReviewCli) -> None:
    pdf = b"%PDF-1.4\n" + bytes(range(256)) * 12 + b"%%EOF\n"
    csv = b"name,age\r\nJ. Doe,12\r\n"
    boundary = "b0undary"

    def part(headers: Sequence[str], payload: bytes) -> bytes:
        return ("\r\n".join([f"--{boundary}", *headers]) + "\r\n\r\n").encode() + payload

    body = b"\r\n".join(
        [
            part(["Content-Type: text/plain; charset=utf-8"], b"Two files attached.\r\n"),
            part(
                [
                    "Content-Type: application/pdf",
                    'Content-Disposition: attachment; filename="referral form.pdf"',
                    "Content-Transfer-Encoding: base64",
                ],
                base64.encodebytes(pdf).replace(b"\n", b"\r\n"),
            ),
            part(
                [
                    "Content-Type: text/csv; name=pupils.csv",
                    "Content-Disposition: attachment; filename=pupils.csv",
                ],
                csv,
            ),
            f"--{boundary}--\r\n".encode(),
        ]
    )
    hold = send_raw(gw, raw([f'Content-Type: multipart/mixed; boundary="{boundary}"'], body))
    shown = cli.ok("held", "show", hold, "--by", "Jo").stdout
    lines = shown.splitlines()
    assert "Two files attached." in lines
    attachments = lines[lines.index("Attachments:") + 1 :]
    assert attachments == [
        f"  referral form.pdf (application/pdf, {len(pdf)} bytes)",
        f"  pupils.csv (text/csv, {len(csv)} bytes)",
    ], shown
    data = cli.run("held", "show", hold, "--json", "--by", "Jo").json()
    assert data["attachments"] == [
        {"filename": "referral form.pdf", "content_type": "application/pdf", "size": len(pdf)},
        {"filename": "pupils.csv", "content_type": "text/csv", "size": len(csv)},
    ]
    assert data["text"] == "Two files attached.\n"


# A body that would clear the screen, retitle the window, ring the bell and start a C1 control
# sequence (U+009B, CSI in one character) if printed raw; the subject hides an OSC sequence in
# an encoded word.
ESCAPES = ["Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: quoted-printable"]
ESCAPES_SUBJECT = "=?utf-8?q?Notes=1B]0;pwned=07_here?="
ESCAPES_BODY = b"before=1B[2J=1B]0;owned=07after=1B[31mred=08 c1 =C2=9B2J csi\r\n"
CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def test_show_escapes_terminal_control_sequences(gw: Gateway, cli: ReviewCli) -> None:
    hold = send_raw(gw, raw(ESCAPES, ESCAPES_BODY, ESCAPES_SUBJECT))
    shown, as_json = cli.run_all(
        [("held", "show", hold, "--by", "Jo"), ("held", "show", hold, "--json", "--by", "Jo")]
    )
    out = shown.stdout
    assert r"before\x1b[2J\x1b]0;owned\x07after\x1b[31mred\x08 c1 \x9b2J csi" in out, out
    assert r"Notes\x1b]0;pwned\x07 here" in out, out
    assert not CONTROLS.search(out), repr(out)
    # JSON escapes the C0 controls (\u001b); C1: see the next test.
    assert "before\\u001b[2J\\u001b]0;owned\\u0007after" in as_json.stdout, as_json
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", as_json.stdout), repr(as_json.stdout)


def test_show_json_escapes_c1_control_characters(gw: Gateway, cli: ReviewCli) -> None:
    # A terminal that takes C1 controls in UTF-8 obeys U+009B as ESC [. The text form escapes
    # it (the test above); the JSON form, also read in a terminal, should not print it raw.
    hold = send_raw(gw, raw(ESCAPES, ESCAPES_BODY, ESCAPES_SUBJECT))
    out = cli.run("held", "show", hold, "--json", "--by", "Jo").stdout
    assert '"text": "before' in out, out
    assert not CONTROLS.search(out), repr(out)


def test_config_given_before_the_command_is_used(gw: Gateway, cli: ReviewCli) -> None:
    # The README's own form: alias gw='.venv/bin/gateway --config var/demo/gateway.toml'. The
    # subcommand's own --config default once overwrote it: the command then ran on the embedded
    # defaults, on an empty store of its own in ./var, and said "no holds".
    hold, _ = send(gw, sender="config-first@school.test")
    ran = cli.run("held", "list", "--sender", "config-first", config_first=True)
    assert ran.code == 0, str(ran)
    assert hold in ran.stdout, str(ran)


def test_show_of_an_unknown_hold_is_a_usage_error(cli: ReviewCli) -> None:
    ran = cli.run("held", "show", "0123456789abcdef")
    assert ran.code == 2, str(ran)
    assert "no held message '0123456789abcdef'" in ran.stderr, str(ran)
    assert ran.stdout == ""


def test_show_names_the_staff_members_client_behind_the_mta(gw: Gateway, cli: ReviewCli) -> None:
    original = raw([], b"Notes about J.\r\n")
    hold = send_forwarded(
        gw,
        original,
        "XFORWARD NAME=pc7.school.test ADDR=192.0.2.7 PORT=50123 PROTO=ESMTP",
        "XFORWARD HELO=PC7 IDENT=4XyZ12 SOURCE=REMOTE",
    )
    client = "pc7.school.test[192.0.2.7] (HELO PC7) via 127.0.0.1, MTA queue id 4XyZ12"
    assert f"Sent from: {client}" in cli.ok("held", "show", hold).stdout.splitlines()
    assert cli.ok("held", "show", hold, "--json").json()["client"] == client

    mid = original.split(b"Message-ID: ")[1].split(b"\r\n")[0].decode()
    arrivals = [
        json.loads(d) for (d,) in gw.query("SELECT data FROM audit WHERE event = ?", ("received",))
    ]
    [arrival] = [a for a in arrivals if a["message_id"] == mid]
    assert arrival["client"] == client
    [logged] = gw.proc.events("message received", message_id=mid)
    assert (logged["client"], logged["via"], logged["helo"]) == ("192.0.2.7", "127.0.0.1", "PC7")
    # The copy relayed at once to the secure recipient: the client in the trace, the MTA as
    # the hop it came via (RFC 5321 §4.4).
    [relayed] = gw.wait_relayed(1, of=original)
    assert relayed.data.startswith(
        b"Received: from PC7 (pc7.school.test [192.0.2.7])\r\n"
        b"\t(via mta.school.test [127.0.0.1])\r\n"
    ), relayed.data[:300]


def test_without_xforward_the_mta_is_the_client(gw: Gateway, cli: ReviewCli) -> None:
    hold = send_forwarded(gw, raw([], b"Notes.\r\n"))
    assert "Sent from: 127.0.0.1" in cli.ok("held", "show", hold).stdout.splitlines()
