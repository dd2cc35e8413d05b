"""`gateway serve` end to end: what a flagged message leaves behind. Its subject and body
never reach the logs, and the held copy is encrypted at rest under a key only root can read."""

from __future__ import annotations

import stat
from collections.abc import Callable

import pytest

from rig.gatewayproc import Gateway, message, readable
from rig.storefault import refuse_holds

pytestmark = pytest.mark.e2e

SENDER = "head@school.test"
SUBJECT_TEXT = "Zebra-Quokka-7731 disclosure about a pupil"
BODY_TEXT = "Pineapple-Narwhal-4409 was seen at the gate"
RECIPIENTS = ["colleague@secure.test", "officer@nosts.test", "someone@servfail.test"]


def secret_message() -> bytes:
    return message(
        to=RECIPIENTS,
        subject=f"[SECURE] {SUBJECT_TEXT}",
        body=f"{BODY_TEXT}.\r\nMore: Pineapple-Narwhal-4409 again.\r\n",
    )


@pytest.mark.parametrize("level", ["info", "debug"])
def test_logs_never_show_subject_or_body(serve: Callable[..., Gateway], level: str) -> None:
    gw = serve(log={"level": level})
    original = secret_message()
    assert gw.send(SENDER, RECIPIENTS, original).code == 250
    # And once more through the paths that log failures: an upstream refusal, then the store.
    gw.upstream.fail_rcpt = {"colleague@secure.test": 550}
    assert gw.send(SENDER, RECIPIENTS, secret_message()).code == 250
    gw.upstream.fail_rcpt = {}
    refuse_holds(gw.held_db)
    assert gw.send(SENDER, RECIPIENTS, secret_message()).code == 451
    assert gw.proc.stop() == 0

    assert len(gw.relayed()) == 1  # the message did pass through the gateway
    # The sender was told about the holds, without the subject or the body.
    notices = gw.notices()
    assert notices
    for notice in notices:
        text = readable(notice)
        for secret in (SUBJECT_TEXT, "Zebra-Quokka", BODY_TEXT, "Pineapple-Narwhal"):
            assert secret not in text, text
    assert gw.proc.events("held")
    assert gw.proc.events("hold failed")
    lines = (gw.proc.stdout() + gw.proc.stderr()).splitlines()
    assert lines
    for secret in (SUBJECT_TEXT, "Zebra-Quokka", BODY_TEXT, "Pineapple-Narwhal"):
        leaks = [line for line in lines if secret in line]
        assert leaks == [], f"{secret!r} in the gateway's output"


def test_held_message_encrypted_at_rest(gw: Gateway) -> None:
    original = secret_message()
    assert gw.send(SENDER, ["officer@nosts.test"], original).code == 250
    [hold] = gw.holds()
    [(held_id, data)] = gw.held_bodies().items()
    assert held_id == hold.id
    assert len(data) > len(BODY_TEXT)
    for secret in (SUBJECT_TEXT, BODY_TEXT, "Pineapple", "Zebra", "X-Safeguarding"):
        assert secret.encode() not in data
    # Nowhere under the data_dir in clear: not in the database, its WAL, or a temporary file.
    for path in gw.data_dir.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            for secret in (SUBJECT_TEXT, BODY_TEXT):
                assert secret.encode() not in content, path
    # The database that keeps the encrypted copy is private to the gateway's user too.
    assert stat.S_IMODE(gw.held_db.stat().st_mode) & 0o077 == 0, oct(gw.held_db.stat().st_mode)
    assert not (gw.data_dir / "held").exists()  # no file per hold any more


def test_store_key_created_with_mode_0600(gw: Gateway) -> None:
    key = gw.data_dir / "store.key"
    assert key.is_file()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600, oct(key.stat().st_mode)
    assert len(key.read_text().strip()) == 64  # 32 bytes as hex


def test_held_message_survives_a_restart_with_the_same_key(gw: Gateway) -> None:
    original = secret_message()
    first = gw.send(SENDER, ["officer@nosts.test"], original)
    assert first.code == 250, first
    key_before = (gw.data_dir / "store.key").read_bytes()
    gw.restart()
    assert (gw.data_dir / "store.key").read_bytes() == key_before
    # The client's retry after the restart is recognised as the same hold.
    second = gw.send(SENDER, ["officer@nosts.test"], original)
    assert second.code == 250, second
    [hold] = gw.holds()
    assert hold.id in first.text
    assert hold.id in second.text
    assert len(gw.held_bodies()) == 1
