"""Faults of the disk and the store, end to end: `gateway serve` answers 4xx while it cannot
keep a message durably (RFC 5321 §4.2.5, §6.1: the sending MTA keeps it and retries), loses
nothing it has answered 250 to, stays up, and takes mail again once the fault is gone.

* The data directory on a file system that fills up (a 2 MiB tmpfs the test mounts; skipped
  where mounting is not permitted).
* The hold database locked by another process (`BEGIN EXCLUSIVE`) for longer than the store
  waits for a lock.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rig.gatewayproc import Gateway, Reply, message
from rig.heldcli import INSECURE, REVIEW, SECURE, SENDER, cli_for, hold_id, wait_notices_of

pytestmark = pytest.mark.e2e

TMPFS_SIZE = "2m"


@contextlib.contextmanager
def small_tmpfs(folder: Path) -> Iterator[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    try:
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0700", "tmpfs", str(folder)],
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError as exc:
        pytest.skip(f"cannot run mount: {exc}")
    if mounted.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path) -> Path:
    """Write a file until the file system has not one byte left; returns it."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (65536, 4096, 512, 1):
            block = b"\0" * size
            while True:
                try:
                    os.write(fd, block)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    return filler


def flagged(to: str = INSECURE) -> bytes:
    return message(sender=SENDER, to=(to,), subject="Child protection referral")


def assert_copy_or_hold(gw: Gateway, original: bytes, reply: Reply) -> None:
    """What a 250 promises: the message is upstream, or held and readable by a reviewer."""
    assert reply.code == 250, reply
    if gw.relayed(of=original):
        return
    [hold] = gw.holds(of=original)
    shown = cli_for(gw).run("held", "show", hold.id)
    assert shown.code == 0, str(shown)


@pytest.fixture
def review_serve(serve: Callable[..., Gateway]) -> Callable[..., Gateway]:
    """`serve` with reviewers to notify, so a hold also queues notices in the store."""
    return lambda data_dir=None: serve(data_dir, review=REVIEW)


def test_a_full_data_directory_gets_4xx_loses_nothing_and_recovers(
    review_serve: Callable[..., Gateway], tmp_path: Path
) -> None:
    with small_tmpfs(tmp_path / "data") as data_dir:
        gw = review_serve(data_dir)
        before = flagged()
        held_before = gw.send(SENDER, [INSECURE], before)
        assert_copy_or_hold(gw, before, held_before)

        filler = fill(data_dir)
        during = flagged()
        reply = gw.send(SENDER, [INSECURE], during)
        assert 400 <= reply.code < 500, f"a full disk got {reply}\n{gw.proc.output()}"
        assert gw.holds(of=during) == []
        assert gw.proc.events("hold failed"), gw.proc.output()  # the operator is told why
        # Mail that needs no hold still gets an answer that keeps its promise.
        plain = message(sender=SENDER, to=(SECURE,), flagged=False)
        plain_reply = gw.send(SENDER, [SECURE], plain)
        if plain_reply.code == 250:
            assert_copy_or_hold(gw, plain, plain_reply)
        else:
            assert 400 <= plain_reply.code < 500, plain_reply
        assert gw.proc.running, gw.proc.output()

        filler.unlink()
        retried = gw.send(SENDER, [INSECURE], during)  # the sending MTA's retry
        assert_copy_or_hold(gw, during, retried)
        # And what was held before the disk filled is still there, whole.
        assert_copy_or_hold(gw, before, held_before)
        new_hold = hold_id(retried)
        notices = wait_notices_of(gw, new_hold, 2)
        assert len(notices) == 2, gw.proc.output()
        gw.proc.stop()  # before the tmpfs goes away under it


def test_a_locked_hold_database_gets_4xx_and_mail_flows_once_it_is_released(
    review_serve: Callable[..., Gateway],
) -> None:
    gw = review_serve()
    first = flagged()
    assert_copy_or_hold(gw, first, gw.send(SENDER, [INSECURE], first))

    locker = sqlite3.connect(gw.held_db, timeout=1, isolation_level=None)
    try:
        locker.execute("BEGIN EXCLUSIVE")  # held for longer than the store waits (10 s)
        during = flagged()
        reply = gw.send(SENDER, [INSECURE], during)
        assert 400 <= reply.code < 500, f"a locked store got {reply}\n{gw.proc.output()}"
        assert gw.proc.running, gw.proc.output()
        assert gw.proc.events("hold failed"), gw.proc.output()
    finally:
        locker.execute("ROLLBACK")
        locker.close()

    assert gw.holds(of=during) == []
    retried = gw.send(SENDER, [INSECURE], during)
    assert_copy_or_hold(gw, during, retried)
    assert_copy_or_hold(gw, first, Reply(250, "the first hold"))
    notices = wait_notices_of(gw, hold_id(retried), 2)
    assert len(notices) == 2, gw.proc.output()
