"""Every kind of audit entry the gateway writes reads as one plain sentence: the web trail,
the hold and tracking pages, `gateway audit list` and `gateway trace` all show it, with the
facts folded away. Each case is built by the same function the code calls to write it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway.audit import events, linkevents, queue, words
from gateway.core.auditchain import KEYED
from gateway.store import AuditRecord, HeldRecipient, Hold, NewQueued, Queued, Status
from gateway.store.links import Link
from gateway.store.queued import QueuedRecipient

ROOT = Path(__file__).parents[2] / "gateway"

HOLD = Hold(
    id="h1a2b3",
    key="k",
    status=Status.RELEASED,
    created_at=0.0,
    sender="head@school.test",
    recipients=(HeldRecipient("colleague@insecure.test", "insecure.test", ("sts-no-record",)),),
    mail_options=(),
    size=120,
    client="192.0.2.7",
    message_id="<m1@school.test>",
    findings=("subject-tag",),
)
HUNDRED = [f"pupil-{n:03}@insecure.test" for n in range(100)]
RECIPIENT = QueuedRecipient("colleague@secure.test", "secure.test")
NEW = NewQueued("k", "head@school.test", (RECIPIENT,), (), b"", "192.0.2.7", "h", "ESMTP", "<m2>")
QUEUED = Queued("q77", "k", 0.0, "head@school.test", (RECIPIENT,), (), 9, "c", "h", "ESMTP", "<m2>")
STS = {"secure.test": {"transport": "mta-sts-enforce"}, "dane.test": {"transport": "dane"}}
PROOF = {
    "recipient": "colleague@secure.test",
    "route": "direct",
    "host": "mx1.secure.test",
    "address": "127.0.0.5",
    "tls_version": "TLSv1.3",
    "authenticated": "mta-sts-webpki",
    "reply": "250 2.0.0 Ok",
}
LINK = Link("LABCDEFGHIJ", "h1a2b3", "colleague@insecure.test", "d" * 64, 0.0, "lead", 9e9)
CLIENT = "198.51.100.7"
KEYED_ENTRY = AuditRecord(KEYED, "", "gateway", {"legacy_entries": 12, "rule": "hmac-sha256"})


CASES: list[tuple[AuditRecord, str]] = [
    (
        events.received("q1", "<m1>", "head@school.test", HUNDRED, "192.0.2.7", ["subject-tag"]),
        "Received from head@school.test (client 192.0.2.7) for pupil-000@insecure.test, "
        "pupil-001@insecure.test, pupil-002@insecure.test and 97 more; flagged: subject-tag",
    ),
    (
        events.relayed("q1", "<m1>", "head@school.test", ["colleague@secure.test"], [], STS),
        "Relayed at once to colleague@secure.test over MTA-STS-enforced TLS",
    ),
    (
        events.relayed("q1", "<m1>", "s", ["a@secure.test", "b@dane.test", "c@old.test"], [], STS),
        "Relayed at once to a@secure.test over MTA-STS-enforced TLS; b@dane.test over "
        "DANE-verified TLS; c@old.test (how: not recorded)",
    ),
    (
        events.delivered("h1a2b3", PROOF),
        "Delivered to colleague@secure.test via mx1.secure.test [127.0.0.5] over TLSv1.3, "
        "certificate verified by MTA-STS — 250 2.0.0 Ok",
    ),
    (
        events.held("q1", HOLD, recipients={a: ["sts-no-record"] for a in HUNDRED}),
        "Held for review as h1a2b3: pupil-000@insecure.test — No MTA-STS policy "
        "(sts-no-record); pupil-001@insecure.test — No MTA-STS policy (sts-no-record); "
        "pupil-002@insecure.test — No MTA-STS policy (sts-no-record); and 97 more",
    ),
    (
        # Every reason in words with its code; a code from another release reads as itself.
        events.held("q1", HOLD, recipients={"x@old.test": ["not-allowlisted", "retired-code"]}),
        "Held for review as h1a2b3: x@old.test — Not on the secure-email list "
        "(not-allowlisted), retired-code",
    ),
    (
        events.release_requested(HOLD, "lead@school.test", "Checked with\nthe DSL"),
        "Release decided by lead@school.test: Checked with the DSL",
    ),
    (
        events.released(HOLD, "lead@school.test", "Checked.", ["colleague@insecure.test"], {}),
        "Released by lead@school.test: Checked. — sent to colleague@insecure.test",
    ),
    (
        events.released(HOLD, "lead@school.test", "Checked", [], {"x@insecure.test": "550 no"}),
        "Released by lead@school.test: Checked — sent to -; refused for x@insecure.test: 550 no",
    ),
    (
        events.rejected(HOLD, "lead@school.test", "Use the portal"),
        "Rejected by lead@school.test: Use the portal",
    ),
    (events.expired(HOLD, 7 * 86400), "Expired unreviewed after 168.0 hours"),
    (
        events.escalated(HOLD, ["head@school.test"], 4 * 3600),
        "Escalated to head@school.test after 4.0 hours unreviewed",
    ),
    (
        events.purged(HOLD, "admin"),
        "Body deleted by admin (the message was released); the record stays",
    ),
    (
        events.notice_sent("held-reviewers", "h1a2b3", ["lead@school.test"]),
        "Reviewers were alerted to the hold: lead@school.test",
    ),
    (
        events.notice_sent("expired", "h1a2b3", ["head@school.test"]),
        "The sender was told it expired unreviewed: head@school.test",
    ),
    (
        events.notice_sent("a-new-kind", "h1a2b3", ["x@school.test"]),
        "Notice (a-new-kind) sent: x@school.test",
    ),
    (events.viewed(HOLD, "lead@school.test"), "Viewed by lead@school.test"),
    (events.signed_in("jo", "127.0.0.1"), "jo signed in from 127.0.0.1"),
    (
        events.sign_in_failed("", "127.0.0.1", "unknown-account"),
        "Sign-in as (unknown account) from 127.0.0.1 refused: no such account",
    ),
    (events.signed_out("jo", "127.0.0.1"), "jo signed out"),
    (events.user_added("sam", "reviewer", "admin"), "Account sam (reviewer) added by admin"),
    (events.password_changed("sam", "sam"), "Password of sam changed by sam"),
    (events.user_disabled("sam", "admin"), "Account sam disabled by admin"),
    (events.user_enabled("sam", "admin"), "Account sam enabled again by admin"),
    (
        events.attachment_downloaded(HOLD, "lead@school.test", 3, 12_800, "report.pdf"),
        "Attachment report.pdf (12.5 KB) downloaded by lead@school.test",
    ),
    (
        # A bidi override is recorded and shown as an escape, never obeyed.
        events.attachment_downloaded(HOLD, "lead@school.test", 2, 42, "\u202egpj.exe"),
        "Attachment \\u202egpj.exe (42 bytes) downloaded by lead@school.test",
    ),
    (
        # Entries written before the name was recorded.
        AuditRecord("attachment-downloaded", "h1a2b3", "jo", {"attachment": 2, "size": 42}),
        "Attachment number 2 (42 bytes) downloaded by jo",
    ),
    (
        queue.queued(NEW),
        "Queued as ? for delivery to the recipients' mail servers: colleague@secure.test; "
        "flagged: -",
    ),
    (
        queue.delivered(QUEUED, "secure.test", ["colleague@secure.test"]),
        "Taken by the mail server of secure.test from queue entry q77: colleague@secure.test",
    ),
    (
        queue.failed(QUEUED, {"colleague@secure.test": "550 5.1.1 unknown"}, gave_up=False),
        "Not delivered from queue entry q77 (refused), the sender told: "
        "colleague@secure.test: 550 5.1.1 unknown",
    ),
    (
        queue.purged(QUEUED, "ops", "sent by hand", ["colleague@secure.test"]),
        "Taken out of the queue by ops (sent by hand); not delivered to colleague@secure.test, "
        "the sender told",
    ),
    (
        linkevents.links_sent(
            HOLD, "lead@school.test", "Parent asked\nfor it", [(LINK.id, LINK.recipient)], False
        ),
        "Sent by secure link by lead@school.test to colleague@insecure.test (LABCDEFGHIJ): "
        "Parent asked for it",
    ),
    (
        linkevents.links_sent(
            HOLD, "gateway", "automatic: sts-no-record", [(LINK.id, LINK.recipient)], True
        ),
        "Sent by secure link automatically to colleague@insecure.test (LABCDEFGHIJ): "
        "automatic: sts-no-record",
    ),
    (
        linkevents.code_sent(LINK, CLIENT),
        "One-time code number 1 sent for link LABCDEFGHIJ to colleague@insecure.test "
        "(from 198.51.100.7)",
    ),
    (
        linkevents.code_failed(LINK, CLIENT, 2, locked=False),
        "Wrong code entered for link LABCDEFGHIJ to colleague@insecure.test "
        "(from 198.51.100.7), attempt 2",
    ),
    (
        linkevents.code_failed(LINK, CLIENT, 5, locked=True),
        "Locked link LABCDEFGHIJ to colleague@insecure.test after 5 wrong codes "
        "(from 198.51.100.7); a reviewer must send a new link",
    ),
    (
        linkevents.opened(LINK, CLIENT),
        "Opened for the first time through link LABCDEFGHIJ to colleague@insecure.test "
        "(from 198.51.100.7), after a right code",
    ),
    (
        linkevents.viewed(LINK, CLIENT),
        "Viewed again through link LABCDEFGHIJ to colleague@insecure.test (from 198.51.100.7)",
    ),
    (
        linkevents.attachment_downloaded(LINK, CLIENT, 2, "plan.pdf"),
        "Attachment plan.pdf downloaded through link LABCDEFGHIJ to colleague@insecure.test "
        "(from 198.51.100.7)",
    ),
    (
        linkevents.replied(LINK, CLIENT, 2048, "head@school.test"),
        "Reply (2.0 KB) through link LABCDEFGHIJ to colleague@insecure.test "
        "(from 198.51.100.7), sent to head@school.test",
    ),
    (
        linkevents.revoked(LINK, "lead@school.test", "sent to\nthe wrong address"),
        "Revoked link LABCDEFGHIJ to colleague@insecure.test by lead@school.test: "
        "sent to the wrong address",
    ),
    (
        linkevents.unopened(LINK, 2 * 86400 + 60, ["head@school.test", "dsl@school.test"]),
        "Not opened after 48 hours: link LABCDEFGHIJ to colleague@insecure.test; told "
        "head@school.test, dsl@school.test",
    ),
    (
        events.notice_sent("link", "h1a2b3", ["colleague@insecure.test"]),
        "The secure link was emailed: colleague@insecure.test",
    ),
    (KEYED_ENTRY, "The audit chain was keyed (hmac-sha256) after 12 earlier entries"),
    # A kind this release does not know (written by a later one) still reads as a line.
    (AuditRecord("allowlist-reloaded", "", "ops", {"files": 3}), "Allowlist reloaded (by ops)"),
]


@pytest.mark.parametrize(("record", "expected"), CASES, ids=lambda c: getattr(c, "event", ""))
def test_each_entry_reads_as_one_sentence(record: AuditRecord, expected: str) -> None:
    said = words.sentence(record.event, record.actor, record.hold_id, record.data)
    assert said == expected
    assert "\n" not in said
    assert "{" not in said


def test_every_event_the_code_writes_has_its_sentence_and_a_case() -> None:
    written = {KEYED}
    for source in ROOT.rglob("*.py"):
        written |= set(re.findall(r'AuditRecord\(\s*"([a-z-]+)"', source.read_text()))
    assert len(written) > 20, written
    assert written <= words.KNOWN, written - words.KNOWN
    assert written <= {record.event for record, _ in CASES}


def test_every_secure_link_event_and_notice_has_its_own_sentence() -> None:
    """The link events are written through one helper, which the scan above cannot see."""
    link_events = {
        "link-sent", "link-code-sent", "link-code-failed", "link-locked", "link-opened",
        "link-viewed", "link-attachment-downloaded", "link-reply", "link-revoked",
        "link-unopened",
    }  # fmt: skip
    assert link_events <= words.KNOWN
    assert link_events <= {record.event for record, _ in CASES}
    kinds = ["link", "link-code", "linked", "linked-reviewers", "link-opened", "link-unopened"]
    for kind in [*kinds, "link-reply"]:
        said = words.sentence("notice-sent", "gateway", "h", {"kind": kind, "to": ["a@b.test"]})
        assert not said.startswith("Notice ("), said
