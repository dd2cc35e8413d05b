"""HoldQuery and AuditQuery as PostgreSQL: the filters in WHERE, the order in ORDER BY, the page
in LIMIT/OFFSET. Values always travel as ``%s`` parameters; only fixed fragments are joined.

They mean what the embedded store's queries mean (``sqlite.queries``): case-insensitive
substrings compare lower case; text sorts by code point (``COLLATE "C"``, as SQLite's binary
order does), and a missing first recipient sorts first (SQLite's NULL order).
"""

from __future__ import annotations

import json
from typing import Any

from gateway.store.postgres.tables import text_value
from gateway.store.queries import AuditQuery, HoldOrder, HoldQuery

# A held recipient matches by jsonb containment (PostgreSQL docs §8.14.3): the list holds an
# object with this domain, or with this code among its reasons.
_CONTAINS = "recipients @> %s::jsonb"
_ORDERS = {
    HoldOrder.OLDEST: "created_at, id",
    HoldOrder.NEWEST: "created_at DESC, id DESC",
    HoldOrder.SENDER: 'lower(sender) COLLATE "C", created_at, id',
    HoldOrder.DOMAIN: "(recipients->0->>'domain') COLLATE \"C\" NULLS FIRST, created_at, id",
    HoldOrder.REASON: ("(recipients->0->'reasons'->>0) COLLATE \"C\" NULLS FIRST, created_at, id"),
}


def search_text(text: str) -> str:
    """Text PostgreSQL can keep and compare: no U+0000, no lone surrogates."""
    return text_value(text).encode("utf-8", "replace").decode("utf-8")


def hold_where(query: HoldQuery) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    values: list[Any] = []

    def add(clause: str, *args: Any) -> None:
        clauses.append(clause)
        values.extend(args)

    if query.statuses:
        add("status = ANY(%s)", sorted(s.value for s in query.statuses))
    if query.sender:
        add("strpos(lower(sender), %s) > 0", search_text(query.sender.lower()))
    if query.recipient_domain:
        add(_CONTAINS, json.dumps([{"domain": query.recipient_domain.lower()}]))
    if query.reason:
        add(_CONTAINS, json.dumps([{"reasons": [query.reason]}]))
    if query.created_before is not None:
        add("created_at <= %s", query.created_before)
    if query.created_after is not None:
        add("created_at >= %s", query.created_after)
    if query.decided_before is not None:
        add("COALESCE(decided_at, created_at) <= %s", query.decided_before)
    if query.decided_after is not None:
        add("decided_at >= %s", query.decided_after)
    if query.escalated is not None:
        add("escalated_at IS NOT NULL" if query.escalated else "escalated_at IS NULL")
    if query.purged is not None:
        add("purged_at IS NOT NULL" if query.purged else "purged_at IS NULL")
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", values


def page(limit: int | None, offset: int) -> tuple[str, list[Any]]:
    if limit is None and not offset:
        return "", []
    # LIMIT NULL is no limit (PostgreSQL docs §7.6 "LIMIT and OFFSET").
    return " LIMIT %s OFFSET %s", [None if limit is None else max(0, limit), max(0, offset)]


def select_holds(columns: str, query: HoldQuery) -> tuple[str, list[Any]]:
    where, values = hold_where(query)
    paging, more = page(query.limit, query.offset)
    sql = f"SELECT {columns} FROM holds{where} ORDER BY {_ORDERS[query.order]}{paging}"  # noqa: S608
    return sql, values + more


def count_holds(query: HoldQuery) -> tuple[str, list[Any]]:
    where, values = hold_where(query)
    return f"SELECT count(*) FROM holds{where}", values  # noqa: S608


def audit_where(query: AuditQuery) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    values: list[Any] = []
    if query.hold_id:
        clauses.append("hold_id = %s")
        values.append(query.hold_id)
    if query.event:
        clauses.append("event = %s")
        values.append(query.event)
    if query.actor:
        clauses.append("strpos(lower(actor), %s) > 0")
        values.append(search_text(query.actor.lower()))
    if query.since is not None:
        clauses.append("at >= %s")
        values.append(query.since)
    for word in query.words:
        # ``search`` is the entry as shown, lower case, written at append time (trail.py).
        clauses.append("strpos(search, %s) > 0")
        values.append(search_text(word.lower()))
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", values


def select_audit(columns: str, query: AuditQuery) -> tuple[str, list[Any]]:
    where, values = audit_where(query)
    order = "seq" if query.oldest_first else "seq DESC"
    paging, more = page(query.limit, query.offset)
    return f"SELECT {columns} FROM audit{where} ORDER BY {order}{paging}", values + more  # noqa: S608


def count_audit(query: AuditQuery) -> tuple[str, list[Any]]:
    where, values = audit_where(query)
    return f"SELECT count(*) FROM audit{where}", values  # noqa: S608
