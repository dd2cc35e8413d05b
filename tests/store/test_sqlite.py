"""The embedded store: data directories from the previous release, file modes, and the policy
cache kept off the event loop. (What both backends do alike is in test_contract.py.)"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import stat
import time
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from web.site import Site

from gateway.accounts.users import FREE_FAILURES, Accounts, Throttle
from gateway.core.model import PolicyStatus
from gateway.core.mtasts import parse_policy
from gateway.core.stscache import CachedPolicy, FetchFailure
from gateway.store.crypto import Sealer
from gateway.store.policycache import PolicyDb
from gateway.store.sqlite import HELD_DB, SqliteStore, tables
from gateway.store.sqlite.accounts import accounts_store
from gateway.web.sessions import Sessions

# A hold's facts as the previous release wrote them: `gateway check --json`, domain by domain.
OLD_FACTS = {
    "nosts.test": {
        "domain": "nosts.test",
        "domain_unicode": "nosts.test",
        "verdict": "insecure",
        "reasons": ["sts-no-record"],
        "transport": "none",
        "allowlist": {"status": "allowed", "entry": {"name": "nosts.test", "note": "LA"}},
        "mx": {"status": "found", "hosts": ["mx.nosts.test"], "dnssec": False, "error": None},
        "mta_sts": {
            "record": {"status": "none", "id": None, "error": None},
            "policy": {"status": "not-fetched", "mode": None, "mx": [], "covers_mx": None},
        },
        "tls_rpt": {"status": "none", "rua": [], "error": None},
        "dane": {"status": "not-dnssec", "resolver_trusted": True, "hosts": []},
        "timings_ms": {"total": 3.5},
    },
    "upstream_refusals": {"gone@secure.test": "550 5.1.1 no such user"},
}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def old_data_dir(folder: Path) -> str:
    """A held.sqlite3 as the release before schema versions left it: one hold, one entry."""
    folder.mkdir(parents=True)
    db = sqlite3.connect(folder / HELD_DB, isolation_level=None)
    db.executescript(tables.VERSION_1)
    recipients = [
        {"address": "x@nosts.test", "domain": "nosts.test", "reasons": ["sts-no-record"]},
    ]
    db.execute(
        tables.INSERT_HOLD,
        ("0123456789abcdef", "k", "held", 1.0e9, "head@school.test", json.dumps(recipients),
         "[]", 10, "127.0.0.1", "<m@school.test>", '["header"]', json.dumps(OLD_FACTS), ""),
    )  # fmt: skip
    db.close()
    return "0123456789abcdef"


async def test_holds_of_the_previous_release_open_and_read_their_facts(tmp_path: Path) -> None:
    old = tmp_path / "old"
    hold_id = old_data_dir(old)
    store = SqliteStore(old, Sealer(bytes(32)))
    try:
        hold = await store.get(hold_id)
        assert hold is not None
        found = hold.facts.assessment("nosts.test")
        assert found is not None
        assert (found.verdict, found.reasons, found.mx_hosts) == (
            "insecure",
            ("sts-no-record",),
            ("mx.nosts.test",),
        )
        assert found.allowlist_entry == "nosts.test"
        assert hold.facts.upstream_refusals == {"gone@secure.test": "550 5.1.1 no such user"}
        assert hold.recipients[0].options == ()
    finally:
        await store.close()
    db = sqlite3.connect(old / HELD_DB)
    version = db.execute("PRAGMA user_version").fetchone()[0]
    assert version == len(tables.migrations(bytes(32), time.time))
    # Nothing lost: the old row keeps every field it had.
    [facts] = db.execute("SELECT facts FROM holds").fetchone()
    assert json.loads(facts) == OLD_FACTS
    db.close()


async def test_the_hold_page_shows_what_the_gateway_found(site: Site) -> None:
    hold = await site.hold()
    db = site.store.connection
    db.execute("UPDATE holds SET facts = ? WHERE id = ?", (json.dumps(OLD_FACTS), hold.id))
    async with site.client() as client:
        await site.sign_in(client, "alice")
        page = await client.get(f"/held/{hold.id}")
    assert "What the gateway found" in page.text
    assert "mx.nosts.test" in page.text
    assert "550 5.1.1 no such user" in page.text


def test_files_the_store_creates_are_private(tmp_path: Path, site: Site) -> None:
    data = site.store.file.path.parent
    assert mode(data / HELD_DB) == 0o600
    assert mode(data / "users.sqlite3") == 0o600
    folder = tmp_path / "new" / "cache"
    PolicyDb(folder / "sts.sqlite3")
    assert mode(folder) == 0o700
    assert mode(folder / "sts.sqlite3") == 0o600


POLICY_TEXT = "version: STSv1\nmode: enforce\nmx: mx.partner.test\nmax_age: 86400\n"
CACHED = CachedPolicy("partner.test", "id1", parse_policy(POLICY_TEXT), POLICY_TEXT, 1.0, 9e9)
FAILED = FetchFailure("id2", 2.0, PolicyStatus.FETCH_ERROR, "timed out", True)


@pytest.mark.parametrize(
    ("writes", "expected"),
    [
        ((), (None, None)),
        (("policy",), (CACHED, None)),
        (("failure",), (None, FAILED)),
        (("policy", "failure"), (CACHED, FAILED)),  # a refetch failed: the policy stands in
        (("failure", "policy"), (CACHED, None)),  # a fetch that worked clears the failure
    ],
)
async def test_a_domains_policy_and_failure_are_read_together(
    tmp_path: Path, writes: tuple[str, ...], expected: tuple[object, object]
) -> None:
    cache = PolicyDb(tmp_path / "sts.sqlite3")
    for write in writes:
        if write == "policy":
            await cache.store_policy(CACHED)
        else:
            await cache.store_failure("partner.test", FAILED)
    assert await cache.entry("partner.test") == expected
    assert expected == (await cache.policy("partner.test"), await cache.failure("partner.test"))
    await cache.close()


async def test_a_busy_policy_cache_does_not_stall_the_event_loop(tmp_path: Path) -> None:
    path = tmp_path / "sts.sqlite3"
    cache = PolicyDb(path)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another worker process is writing
    failure = FetchFailure("id1", 1.0, PolicyStatus.FETCH_ERROR, "timed out", True)
    write = asyncio.create_task(cache.store_failure("slow.test", failure))
    await asyncio.sleep(0)  # let the write start; were it on the loop, we would resume after it
    assert not write.done()
    other.execute("COMMIT")
    await write
    assert await cache.failure("slow.test") == failure
    other.close()
    await cache.close()


@pytest.mark.parametrize("closed_twice", [False, True])
async def test_the_policy_cache_closes_cleanly(tmp_path: Path, closed_twice: bool) -> None:
    cache = PolicyDb(tmp_path / "sts.sqlite3")
    assert await cache.forget() == 0
    await cache.close()
    if closed_twice:
        await cache.close()


def test_accounts_throttle_and_sessions_share_one_open_file(tmp_path: Path) -> None:
    path = tmp_path / "data" / "users.sqlite3"
    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    accounts = Accounts(accounts_store(path), hasher=cheap)
    throttle = Throttle(accounts_store(path))
    sessions = Sessions(accounts_store(path), "k" * 40, max_age=3600, idle=600)
    accounts.add("jo", "reviewer", "a long enough password")
    assert accounts_store(path) is accounts_store(path)
    session_id = sessions.create("jo", "192.0.2.1")
    session = sessions.load(session_id)
    assert session is not None
    assert session.user.name == "jo"
    for _ in range(FREE_FAILURES["user"] + 1):
        throttle.failed(["user:jo"])
    assert throttle.wait(["user:jo"]) > 0
    accounts.set_disabled("jo", True)
    assert sessions.load(session_id) is None  # a disabled account's sessions end at once
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
