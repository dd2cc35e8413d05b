"""Accounts and the sign-in throttle (gateway.users), and `gateway users ...` as a user runs it."""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.accounts.users import (
    MAX_DELAY,
    USERS_DB,
    Accounts,
    Role,
    Throttle,
    delay_after,
)
from gateway.errors import UserError
from gateway.store.accountstore import AccountStore
from gateway.store.sqlite.accounts import accounts_store
from support.fakes import FakeClock

GATEWAY = Path(sys.executable).parent / "gateway"
PASSWORD = "correct horse battery staple"


def test_passwords_are_argon2id_hashes_in_a_private_file(tmp_path: Path) -> None:
    accounts = Accounts(accounts_store(tmp_path / USERS_DB))
    user = accounts.add("Jo.Smith", "admin", PASSWORD)
    assert (user.name, user.role, user.disabled) == ("jo.smith", Role.ADMIN, False)
    with contextlib.closing(sqlite3.connect(tmp_path / USERS_DB)) as db:
        [digest] = db.execute("SELECT hash FROM users").fetchone()
    assert digest.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert PASSWORD not in digest
    assert stat.S_IMODE(os.stat(tmp_path / USERS_DB).st_mode) == 0o600
    signed_in, why = accounts.authenticate("JO.SMITH", PASSWORD)
    assert (signed_in.name if signed_in else None, why) == ("jo.smith", "")
    assert accounts.get("jo.smith").signed_in_at is not None


@pytest.mark.parametrize(
    ("name", "password", "problem"),
    [
        ("", PASSWORD, "not an account name"),
        ("jo smith", PASSWORD, "not an account name"),
        ("<script>", PASSWORD, "not an account name"),
        ("x" * 65, PASSWORD, "not an account name"),
        ("jo", "short", "at least 12 characters"),
        ("jo", "x" * 1025, "at most 1024"),
    ],
)
def test_bad_names_and_passwords_are_refused(
    tmp_path: Path, name: str, password: str, problem: str
) -> None:
    with pytest.raises(UserError, match=problem):
        Accounts(accounts_store(tmp_path / USERS_DB)).add(name, "reviewer", password)


def test_authentication_outcomes(records: AccountStore) -> None:
    accounts = Accounts(records)
    accounts.add("jo", "reviewer", PASSWORD)
    with pytest.raises(UserError, match="already an account"):
        accounts.add("JO", "reviewer", PASSWORD)
    assert accounts.authenticate("jo", "wrong password")[1] == "wrong-password"
    assert accounts.authenticate("nobody", PASSWORD) == (None, "unknown-account")
    assert accounts.authenticate("bad name!", PASSWORD) == (None, "unknown-account")
    accounts.set_disabled("jo", True)
    user, why = accounts.authenticate("jo", PASSWORD)
    assert user is not None
    assert why == "disabled"
    accounts.set_disabled("jo", False)
    accounts.set_password("jo", "another long password")
    assert accounts.authenticate("jo", PASSWORD)[1] == "wrong-password"
    assert accounts.authenticate("jo", "another long password")[1] == ""
    with pytest.raises(UserError, match="no account"):
        accounts.set_password("nobody", PASSWORD)


@pytest.mark.parametrize(
    ("failures", "free", "delay"),
    [
        (0, 3, 0),
        (2, 3, 0),
        (3, 3, 1),
        (4, 3, 2),
        (6, 3, 8),
        (12, 3, 512),
        (13, 3, MAX_DELAY),
        (500, 3, MAX_DELAY),
        (9, 10, 0),
        (10, 10, 1),
    ],
)
def test_the_wait_doubles_after_the_free_failures(failures: int, free: int, delay: float) -> None:
    assert delay_after(failures, free) == delay


def test_throttle_forgets_after_a_day_and_on_success(records: AccountStore) -> None:
    clock = FakeClock()
    throttle = Throttle(records, clock)
    keys = ["user:jo", "addr:192.0.2.1"]
    for _ in range(5):
        throttle.failed(keys)
    assert throttle.wait(keys) == 4.0
    assert throttle.wait(["addr:192.0.2.1"]) == 0.0  # an address has more free failures
    clock.advance(86400)
    assert throttle.wait(keys) == 0.0
    for _ in range(5):
        throttle.failed(keys)
    throttle.succeeded("user:jo")
    assert throttle.wait(keys) == 0.0


# --- the command line ------------------------------------------------------------------------


def gateway(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    return subprocess.run(
        [str(GATEWAY), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_users_commands(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text('[store]\ndata_dir = "state"\n')
    first = gateway(
        "--config",
        str(config),
        "users",
        "add",
        "jo",
        "--role",
        "admin",
        "--by",
        "installer",
        stdin=PASSWORD + "\n",
    )
    assert first.returncode == 0, first.stderr
    assert first.stdout == "added jo (admin)\n"
    assert (tmp_path / "state" / USERS_DB).exists()
    twice = gateway("users", "add", "jo", "--config", str(config), stdin=PASSWORD + "\n")
    assert twice.returncode == 2
    assert "already an account" in twice.stderr
    weak = gateway("users", "add", "sam", "--config", str(config), stdin="short\n")
    assert weak.returncode == 2
    assert "at least 12 characters" in weak.stderr
    assert gateway("users", "add", "sam", "--config", str(config), stdin=PASSWORD).returncode == 0
    assert gateway("users", "disable", "sam", "--config", str(config)).returncode == 0
    changed = gateway(
        "users", "passwd", "jo", "--config", str(config), stdin="a new long password\n"
    )
    assert changed.returncode == 0, changed.stderr
    listed = json.loads(gateway("users", "list", "--json", "--config", str(config)).stdout)
    assert [(u["name"], u["role"], u["disabled"]) for u in listed] == [
        ("jo", "admin", False),
        ("sam", "reviewer", True),
    ]
    assert (
        Accounts(accounts_store(tmp_path / "state" / USERS_DB)).authenticate(
            "jo", "a new long password"
        )[1]
        == ""
    )
    trail = gateway("audit", "list", "--config", str(config)).stdout
    assert "user-added" in trail
    assert "installer" in trail
    assert "user-disabled" in trail
    assert "password-changed" in trail
    assert gateway("audit", "verify", "--config", str(config)).returncode == 0


def test_account_changes_name_who_acted_the_way_review_decisions_do(tmp_path: Path) -> None:
    # `gateway users` once wrote --by into the trail as typed, while `gateway held` collapsed
    # its whitespace and capped its length: the same person showed up under two names.
    config = tmp_path / "gateway.toml"
    config.write_text('[store]\ndata_dir = "state"\n')
    by = "  Jo \t Bloggs  " + "x" * 300
    added = gateway("users", "add", "jo", "--by", by, "--config", str(config), stdin=PASSWORD)
    assert added.returncode == 0, added.stderr
    blank = gateway("users", "disable", "jo", "--by", "   ", "--config", str(config))
    assert blank.returncode == 0, blank.stderr
    export = gateway("audit", "export", "--format", "json", "--config", str(config)).stdout
    actors = {e["event"]: e["actor"] for e in json.loads(export)}
    assert actors["user-added"] == ("Jo Bloggs " + "x" * 300)[:200]
    assert actors["user-disabled"] == getpass.getuser()  # a blank --by names the login
