"""Accounts, the sign-in throttle and web sessions as several nodes see them: on PostgreSQL
each ``open_records()`` is another node (a pool of its own on the one database); on SQLite it
is the process's one file, which must behave the same."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from gateway.accounts.users import FREE_FAILURES, Accounts, Throttle
from gateway.store.accountstore import AccountStore
from gateway.web.sessions import Sessions
from support.fakes import FakeClock
from web.site import PASSWORD, cheap_hasher

SECRET = "s" * 40
Nodes = Callable[[], AccountStore]


def sessions_on(records: AccountStore, clock: FakeClock) -> Sessions:
    return Sessions(records, SECRET, max_age=3600, idle=600, clock=clock)


def test_a_session_made_on_one_node_works_on_another(open_records: Nodes) -> None:
    clock = FakeClock()
    node_a, node_b = open_records(), open_records()
    Accounts(node_a, clock, cheap_hasher()).add("jo", "reviewer", PASSWORD)
    on_a, on_b = sessions_on(node_a, clock), sessions_on(node_b, clock)
    session_id = on_a.create("jo", "192.0.2.1")
    seen = on_b.load(session_id)
    assert seen is not None
    assert seen.user.name == "jo"
    on_b.flash(seen, "ok", "released; sent to officer@nosts.test")
    again = on_a.load(session_id, take_flash=True)
    assert again is not None
    assert again.flash is not None
    assert again.flash.text == "released; sent to officer@nosts.test"
    assert again.csrf == seen.csrf
    on_b.end(seen)  # signed out on B: gone on A too
    assert on_a.load(session_id) is None


def test_disabling_an_account_on_one_node_ends_its_sessions_on_every_node(
    open_records: Nodes,
) -> None:
    clock = FakeClock()
    node_a, node_b = open_records(), open_records()
    accounts_b = Accounts(node_b, clock, cheap_hasher())
    accounts_b.add("jo", "reviewer", PASSWORD)
    on_a = sessions_on(node_a, clock)
    first, second = on_a.create("jo", "192.0.2.1"), on_a.create("jo", "192.0.2.2")
    accounts_b.set_disabled("jo", True)
    assert on_a.load(first) is None
    accounts_b.set_disabled("jo", False)
    assert node_b.end_sessions("jo") == 1  # the other session, as `gateway users passwd` does
    assert on_a.load(second) is None


def test_an_account_added_on_two_nodes_at_once_is_added_once(open_records: Nodes) -> None:
    nodes = [Accounts(open_records(), hasher=cheap_hasher()) for _ in range(2)]
    start = threading.Barrier(len(nodes))

    def add(accounts: Accounts) -> bool:
        start.wait()
        try:
            accounts.add("jo", "reviewer", PASSWORD)
        except Exception:  # UserError: "there is already an account"
            return False
        return True

    with ThreadPoolExecutor(len(nodes)) as pool:
        assert sorted(pool.map(add, nodes)) == [False, True]


def test_failed_sign_ins_on_two_nodes_at_once_are_all_counted(open_records: Nodes) -> None:
    """An attacker spreading guesses over both nodes gets the free attempts once, not once
    a node: every attempt is counted before any password is checked, whichever node took it."""
    clock = FakeClock()
    throttles = [Throttle(open_records(), clock) for _ in range(2)]
    keys = ["user:jo", "addr:198.51.100.66"]
    attempts = 20
    start = threading.Barrier(len(throttles) * attempts)

    def attempt(throttle: Throttle) -> float:
        start.wait()
        return throttle.attempt(keys)

    work = [throttle for throttle in throttles for _ in range(attempts)]
    with ThreadPoolExecutor(len(work)) as pool:
        assert set(pool.map(lambda throttle: throttle.wait(keys), work)) == {0}  # pools filled
        waits = list(pool.map(attempt, work))
    checked = [wait for wait in waits if wait == 0]
    assert len(checked) == FREE_FAILURES["user"]
    counted = {key: count for key, count, _ in throttles[0]._records.failures(keys)}
    assert counted == {"user:jo": FREE_FAILURES["user"], "addr:198.51.100.66": 3}
    assert [throttle.wait(keys) for throttle in throttles] == [1.0, 1.0]  # the same wait
