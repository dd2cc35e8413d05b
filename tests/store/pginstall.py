"""A single-node install with something in every table, written through the embedded backend
itself (SqliteStore, the accounts, the policy cache), for the copy into PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gateway.core.model import PolicyStatus
from gateway.core.mtasts import parse_policy
from gateway.core.securelink import token_digest
from gateway.core.stscache import CachedPolicy, FetchFailure
from gateway.store import HeldRecipient, NewHold, Status
from gateway.store.accounts import NewSession, Role, User
from gateway.store.changes import SendLinks
from gateway.store.crypto import Sealer
from gateway.store.links import NewLink
from gateway.store.policycache import PolicyDb
from gateway.store.postgres.copy import Install
from gateway.store.probes import ProbeRecord
from gateway.store.queued import NewQueued, QueuedRecipient
from gateway.store.records import AuditRecord, NewNotice
from gateway.store.sqlite import HELD_DB, SqliteStore
from gateway.store.sqlite.accounts import SqliteAccounts

STORE_KEY = bytes(range(32))
AUDIT_KEY = bytes(range(32, 64))
HOLDS = 5
POLICY = "version: STSv1\nmode: enforce\nmx: mx.partner.test\nmax_age: 86400\n"


@dataclass(frozen=True)
class Made:
    install: Install
    hold_ids: list[str]
    queue_ids: list[str]
    link: NewLink | None = None  # the last hold's, sent by secure link, with one code sent


def install_of(folder: Path) -> Install:
    return Install(
        held_db=folder / HELD_DB,
        held_dir=folder / "held",
        queue_dir=folder / "queue",
        policy_db=folder / "sts-cache.sqlite3",
        users_db=folder / "users.sqlite3",
    )


def body(n: int) -> bytes:
    return f"Subject: hold {n}\r\n\r\nabout a child, number {n}\r\n".encode()


async def send_link(store: SqliteStore, hold_id: str, recipient: str) -> NewLink:
    link = NewLink("LCOPY000001", recipient, token_digest("t" * 43), 9e9)
    change = SendLinks(10.0, "alice", "the procedure", (link,))
    record = AuditRecord("link-sent", hold_id, "alice", {"link": link.id})
    assert await store.update(hold_id, frozenset({Status.HELD}), change, [record])
    assert await store.link_code_sent(link.id, 0, "c" * 64, 11.0, 611.0)
    return link


async def make_install(folder: Path, holds: int = HOLDS, linked: bool = False) -> Made:
    """``linked``: the last hold is sent by secure link (one more audit entry)."""
    store = SqliteStore(folder, Sealer(STORE_KEY), audit_key=AUDIT_KEY)
    hold_ids, queue_ids = [], []
    link = None
    try:
        for n in range(holds):
            new = NewHold(
                key=f"copy:{n}",
                sender="staff@school.test",
                recipients=(HeldRecipient(f"a{n}@partner.test", "partner.test", ("no-mx",)),),
                mail_options=(),
                message=body(n),
                client="127.0.0.1",
                message_id=f"<{n}@school.test>",
                findings=("header",),
                subject=f"hold {n} \x00 with a NUL",
            )

            def then(hold: object, n: int = n) -> tuple[list[AuditRecord], list[NewNotice]]:
                hold_id = getattr(hold, "id")  # noqa: B009
                audit = [AuditRecord("held", hold_id, "gateway", {"n": n})]
                notice = NewNotice("held", hold_id, "", ("staff@school.test",), b"notice")
                return audit, [notice]

            hold, _ = await store.hold(new, then)
            hold_ids.append(hold.id)
            await store.record_relayed(f"copy:{n}", [f"b{n}@secure.test"])
            queued, _ = await store.enqueue(
                NewQueued(
                    f"queue:{n}",
                    "staff@school.test",
                    (QueuedRecipient(f"c{n}@direct.test", "direct.test"),),
                    (),
                    body(n),
                    "127.0.0.1",
                    "mta.school.test",
                    "ESMTP",
                    f"<{n}@school.test>",
                ),
                [AuditRecord("queued", "", "gateway", {"n": n})],
            )
            queue_ids.append(queued.id)
        await store.purge_body(hold_ids[0], [AuditRecord("purged", hold_ids[0], "gateway", {})])
        await store.record_probes([ProbeRecord("partner.test", 1.0, True, "all good", ({"a": 1},))])
        if linked:
            link = await send_link(store, hold_ids[-1], f"a{holds - 1}@partner.test")
    finally:
        await store.close()
    cache = PolicyDb(folder / "sts-cache.sqlite3")
    try:
        cached = CachedPolicy("partner.test", "id1", parse_policy(POLICY), POLICY, 1.0, 9e9)
        await cache.store_policy(cached)
        failed = FetchFailure("id2", 2.0, PolicyStatus.FETCH_ERROR, "timed out", True)
        await cache.store_failure("broken.test", failed)
    finally:
        await cache.close()
    accounts = SqliteAccounts(folder / "users.sqlite3")
    try:
        accounts.add_user(User("alice", Role.REVIEWER, False, 1.0, 1.0, None), "$argon2id$x")
        accounts.add_user(User("bob", Role.ADMIN, False, 1.0, 1.0, None), "$argon2id$y")
        accounts.set_disabled("bob", True)
        accounts.add_failure(["addr:192.0.2.1"], 5.0, 0.0)
        accounts.add_session(NewSession("s" * 64, "alice", "c", "192.0.2.1", 6.0), "", (0, 0))
    finally:
        accounts.close()
    return Made(install_of(folder), hold_ids, queue_ids, link)
