"""Moving a single-node install into PostgreSQL (`gateway store copy --to DSN`).

What the embedded backend keeps in three SQLite files is written to a migrated database: the
hold store's tables (holds and their sealed bodies, the relay journal, the audit trail, the
outbox, the delivery queue and its bodies, the last probes, the secure links and the codes
they sent), the MTA-STS policy cache and the accounts
(users, the sign-in throttle, web sessions).

The copy is made to be run again. Each table goes in batches, each batch one transaction of
``INSERT ... ON CONFLICT DO NOTHING`` (PostgreSQL docs, "INSERT", the ON CONFLICT clause), so a
copy that was stopped halfway finishes on the next run and never doubles a row. The sealed
bodies go as they are: AES-GCM's associated data is the hold's id (the queue entry's
``queue:<id>``), not where it is kept, so the nodes open them under the same store key. An
install of an earlier release, never started by this one, still has its bodies in files
(``held/<id>.msg``, ``queue/<id>.msg``: the store takes them into its tables at open,
``sqlite.bodyfiles``, and the copy opens the files read-only): a body not in its table is
read from its file.

The audit trail goes verbatim (seq, at, event, hold id, actor, the sealed JSON text, prev and
hash), so every hash already witnessed stays valid. A target whose trail is not a prefix of
this install's (a database other nodes already write to) is refused before anything is
written; after the copy the target's whole chain is verified under the audit key.

The install must be stopped while it is copied: claims in progress (a release, a notice, a
queue lease) are copied as free, since the process that made them is gone.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from psycopg import Connection

from gateway.core import auditchain
from gateway.core.auditchain import Entry
from gateway.errors import GatewayError, SchemaMismatch
from gateway.store import schema
from gateway.store.postgres import trail
from gateway.store.postgres.database import SyncDatabase
from gateway.store.postgres.tables import SCHEMA_VERSION, text_value

BATCH = 500
Row = tuple[Any, ...]


class CopyRefused(GatewayError):
    """The target database cannot take this install (its trail is another one's)."""


@dataclass(frozen=True)
class Install:
    """Where a single-node install keeps its state (``[store] data_dir`` and its files)."""

    held_db: Path  # the hold store
    held_dir: Path  # <hold id>.msg, sealed, of an install of an earlier release
    queue_dir: Path  # <queue id>.msg, the same
    policy_db: Path  # the MTA-STS policy cache
    users_db: Path  # the accounts


@dataclass(frozen=True)
class Table:
    file: str  # the Install field naming the SQLite file
    name: str
    columns: tuple[str, ...]
    convert: Callable[[Row], Row] = lambda row: row
    # The same columns in PostgreSQL, where a name differs ("user" is reserved there).
    target_columns: tuple[str, ...] = ()
    verbatim: bool = False  # the audit trail: every byte as sealed
    casts: dict[str, str] = field(default_factory=dict)


@dataclass
class Counts:
    source: int = 0
    copied: int = 0
    target: int = 0


@dataclass
class CopyReport:
    tables: dict[str, Counts] = field(default_factory=dict)
    bodies_missing: list[str] = field(default_factory=list)
    audit_problem: auditchain.Problem | None = None

    @property
    def complete(self) -> bool:
        audit = self.tables.get("audit", Counts())
        return self.audit_problem is None and audit.source == audit.target


def _free_hold(row: Row) -> Row:
    *rest, _attempt_at, _attempt_by = row
    # jsonb refuses the escape \u0000 (PostgreSQL docs, "JSON Types"), as text refuses U+0000.
    recipients = HOLD_COLUMNS.index("recipients")
    rest[recipients] = rest[recipients].replace("\\u0000", "\\ufffd")
    return (*rest, None, "")


def _free_notice(row: Row) -> Row:
    return (*row[:-1], "")


def _free_queued(row: Row) -> Row:
    *rest, _lease_until, _lease_by, done_at = row
    return (*rest, None, "", done_at)


def _with_search(row: Row) -> Row:
    """An entry as it was sealed, and the text word search reads (computed as an append does)."""
    _seq, _at, event, hold_id, actor, data, _prev, _hash = row
    return (*row, trail.searchable(event, hold_id, actor, json.loads(data)))


def _flag(index: int) -> Callable[[Row], Row]:
    """SQLite keeps a boolean as 0/1; PostgreSQL's boolean takes only true/false."""

    def convert(row: Row) -> Row:
        return (*row[:index], bool(row[index]), *row[index + 1 :])

    return convert


# fmt: off
HOLD_COLUMNS = (
    "id", "key", "status", "created_at", "sender", "recipients", "mail_options", "size",
    "client", "message_id", "findings", "facts", "subject", "decided_at", "decided_by",
    "decision", "escalated_at", "purged_at", "delivered", "refused", "last_error",
    "attempt_at", "attempt_by",
)
OUTBOX_COLUMNS = (
    "id", "kind", "hold_id", "sender", "recipients", "message", "created_at", "attempts",
    "next_at", "sent_at", "last_error", "claimed_by",
)
QUEUE_COLUMNS = (
    "id", "key", "created_at", "entry", "attempts", "next_at", "last_error", "lease_until",
    "lease_by", "done_at",
)
# fmt: on
LINK_COLUMNS = ("position", *schema.LINK_COLUMNS.split(", "))
AUDIT_COLUMNS = ("seq", "at", "event", "hold_id", "actor", "data", "prev", "hash")
SESSION_COLUMNS = ("key", "user", "csrf", "client", "created_at", "seen_at", "flash")
TABLES = (
    Table("held_db", "holds", HOLD_COLUMNS, convert=_free_hold, casts={"recipients": "jsonb"}),
    Table("held_db", "relay_journal", ("key", "recipient", "at")),
    Table(
        "held_db",
        "audit",
        AUDIT_COLUMNS,
        _with_search,
        target_columns=(*AUDIT_COLUMNS, "search"),
        verbatim=True,
    ),
    Table("held_db", "outbox", OUTBOX_COLUMNS, convert=_free_notice),
    Table("held_db", "probe_results", ("domain", "at", "secure", "summary", "hosts"), _flag(2)),
    Table("held_db", "queue", QUEUE_COLUMNS, convert=_free_queued),
    Table("held_db", "secure_links", LINK_COLUMNS),
    Table("held_db", "link_codes", ("link_id", "number", "address", "sent_at")),
    Table("policy_db", "sts_policy", ("domain", "id", "policy", "fetched_at", "expires_at")),
    Table(
        "policy_db", "sts_failure", ("domain", "id", "at", "status", "error", "temporary"), _flag(5)
    ),
    Table(
        "users_db",
        "users",
        ("name", "role", "hash", "disabled", "created_at", "password_at", "signed_in_at"),
        _flag(3),
    ),
    Table("users_db", "sign_in_failures", ("key", "failures", "last_at")),
    Table(
        "users_db",
        "sessions",
        SESSION_COLUMNS,
        target_columns=("key", "user_name", *SESSION_COLUMNS[2:]),
    ),
)
# The sealed bodies that go with a table's rows: (table, Install folder of an earlier release's
# files, body table (the same name on both backends), its key).
BODIES = {
    "holds": ("held_dir", "hold_bodies", "hold_id"),
    "queue": ("queue_dir", "queue_bodies", "queue_id"),
}


def copy_install(
    install: Install,
    db: SyncDatabase,
    audit_key: bytes,
    *,
    batch: int = BATCH,
    on_batch: Callable[[str, int], None] | None = None,
) -> CopyReport:
    """Copy ``install`` into ``db`` (migrated to this release's schema) and verify the copied
    trail; ``on_batch(table, rows)`` is told after each batch is committed."""
    with db.transaction() as conn:
        found = _schema_version(conn)
    if found != SCHEMA_VERSION:
        raise SchemaMismatch(found, SCHEMA_VERSION)
    report = CopyReport()
    with _sources(install) as sources:
        held = sources.get("held_db")
        if held is not None:
            _check_trail_prefix(held, db)
        for table in TABLES:
            source = sources.get(table.file)
            if source is None or not _has_table(source, table.name):
                continue
            counts = report.tables[table.name] = Counts()
            for rows in _batches(source, table, batch):
                counts.source += len(rows)
                with db.transaction() as conn:
                    counts.copied += _insert(conn, table, rows)
                    if table.name in BODIES:
                        report.bodies_missing += _copy_bodies(
                            conn, install, source, table.name, rows
                        )
                if on_batch is not None:
                    on_batch(table.name, len(rows))
    with db.transaction() as conn:
        for name, counts in report.tables.items():
            counts.target = _count(conn, name)
    report.audit_problem = verify_trail(db, audit_key)
    return report


class _Sources(dict[str, sqlite3.Connection]):
    def __enter__(self) -> _Sources:
        return self

    def __exit__(self, *exc: object) -> None:
        for connection in self.values():
            connection.close()


def _sources(install: Install) -> _Sources:
    """The SQLite files of the install that exist, opened read-only."""
    sources = _Sources()
    for name in ("held_db", "policy_db", "users_db"):
        path: Path = getattr(install, name)
        if path.is_file():
            sources[name] = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    return sources


def _has_table(source: sqlite3.Connection, name: str) -> bool:
    found = source.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,))
    return found.fetchone() is not None


def _batches(source: sqlite3.Connection, table: Table, size: int) -> Iterator[list[Row]]:
    """The rows in rowid order, a batch at a time (keyset paging, not OFFSET)."""
    after = 0
    columns = ", ".join(f'"{c}"' for c in table.columns)
    sql = f"SELECT rowid, {columns} FROM {table.name} WHERE rowid > ? ORDER BY rowid LIMIT ?"  # noqa: S608
    while True:
        found = source.execute(sql, (after, size)).fetchall()
        if not found:
            return
        after = found[-1][0]
        rows = [table.convert(tuple(row[1:])) for row in found]
        yield rows if table.verbatim else [_storable(row) for row in rows]


def _storable(row: Row) -> Row:
    return tuple(text_value(v) if isinstance(v, str) else v for v in row)


def _insert(conn: Connection[Any], table: Table, rows: Sequence[Row]) -> int:
    columns = table.target_columns or table.columns
    values = ", ".join(f"%s::{table.casts[c]}" if c in table.casts else "%s" for c in columns)
    sql = (
        f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({values})"  # noqa: S608
        " ON CONFLICT DO NOTHING"
    )
    with conn.cursor() as cursor:
        cursor.executemany(sql, rows)
        # psycopg 3: rowcount after executemany is the sum over the rows.
        return max(cursor.rowcount, 0)


def _copy_bodies(
    conn: Connection[Any],
    install: Install,
    source: sqlite3.Connection,
    table: str,
    rows: Sequence[Row],
) -> list[str]:
    """The sealed bodies of these rows, as they are; the ids of rows whose body is missing
    though the row still promises one."""
    folder_name, body_table, key = BODIES[table]
    folder: Path = getattr(install, folder_name)
    in_table = _has_table(source, body_table)
    select = f"SELECT body FROM {body_table} WHERE {key} = ?"  # noqa: S608
    bodies, missing = [], []
    for row in rows:
        row_id = row[0]
        found = source.execute(select, (row_id,)).fetchone() if in_table else None
        if found is not None:
            bodies.append((row_id, bytes(found[0])))
            continue
        try:
            bodies.append((row_id, (folder / f"{row_id}.msg").read_bytes()))
        except FileNotFoundError:
            if _promises_body(table, row):
                missing.append(row_id)
    if bodies:
        with conn.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO {body_table} ({key}, body) VALUES (%s, %s)"  # noqa: S608
                " ON CONFLICT DO NOTHING",
                bodies,
            )
    return missing


def _promises_body(table: str, row: Row) -> bool:
    if table == "holds":
        return row[HOLD_COLUMNS.index("purged_at")] is None
    return row[-1] is None  # a queue entry keeps its body until it is done


def _check_trail_prefix(held: sqlite3.Connection, db: SyncDatabase) -> None:
    """Refuse a target whose last audit entry is not this install's entry of that number: its
    trail is another chain (HMAC over ``prev``: one equal hash means an equal prefix)."""
    with db.transaction() as conn:
        head = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    if head is None:
        return
    seq, digest = head
    mine = held.execute("SELECT hash FROM audit WHERE seq = ?", (seq,)).fetchone()
    if mine is None or mine[0] != digest:
        raise CopyRefused(
            f"the target's audit trail (entry {seq}) is not a copy of this install's: the"
            " database is already used by other nodes; copy into a new, empty database"
        )


def verify_trail(db: SyncDatabase, audit_key: bytes) -> auditchain.Problem | None:
    """The target's whole chain, streamed through a server-side cursor."""
    with db.transaction() as conn, conn.cursor(name="copied_trail") as cursor:
        cursor.execute(
            "SELECT seq, at, event, hold_id, actor, data, prev, hash FROM audit ORDER BY seq"
        )
        entries = (
            Entry(seq, at, event, hold_id, actor, json.loads(data), prev, digest)
            for seq, at, event, hold_id, actor, data, prev, digest in cursor
        )
        return auditchain.verify(entries, audit_key)


def _count(conn: Connection[Any], table: str) -> int:
    row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()  # noqa: S608
    return int(row[0]) if row else 0


def _schema_version(conn: Connection[Any]) -> int:
    row = conn.execute("SELECT to_regclass('gateway_schema') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return 0
    row = conn.execute("SELECT coalesce(max(version), 0) FROM gateway_schema").fetchone()
    return int(row[0]) if row else 0
