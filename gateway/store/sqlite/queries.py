"""HoldQuery and AuditQuery as SQL: the filters in WHERE, the order in ORDER BY, the page in
LIMIT/OFFSET. Values always travel as parameters; only fixed fragments are joined."""

from __future__ import annotations

from typing import Any

from gateway.store.queries import AuditQuery, HoldOrder, HoldQuery

# The held recipients are a JSON list in the row (SQLite's JSON functions read it in place).
_HAS_DOMAIN = (
    "EXISTS (SELECT 1 FROM json_each(holds.recipients) r"
    " WHERE json_extract(r.value, '$.domain') = ?)"
)
_HAS_REASON = (
    "EXISTS (SELECT 1 FROM json_each(holds.recipients) r,"
    " json_each(json_extract(r.value, '$.reasons')) c WHERE c.value = ?)"
)
_HAYSTACK = "event || ' ' || hold_id || ' ' || actor || ' ' || data_text(data)"
_ORDERS = {
    HoldOrder.OLDEST: "created_at, id",
    HoldOrder.NEWEST: "created_at DESC, id DESC",
    HoldOrder.SENDER: "py_lower(sender), created_at, id",
    HoldOrder.DOMAIN: "json_extract(recipients, '$[0].domain'), created_at, id",
    HoldOrder.REASON: "json_extract(recipients, '$[0].reasons[0]'), created_at, id",
}


def hold_where(query: HoldQuery) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    values: list[Any] = []

    def add(clause: str, *args: Any) -> None:
        clauses.append(clause)
        values.extend(args)

    if query.statuses:
        statuses = sorted(s.value for s in query.statuses)
        add(f"status IN ({', '.join('?' for _ in statuses)})", *statuses)
    if query.sender:
        add("instr(py_lower(sender), ?) > 0", query.sender.lower())
    if query.recipient_domain:
        add(_HAS_DOMAIN, query.recipient_domain.lower())
    if query.reason:
        add(_HAS_REASON, query.reason)
    if query.created_before is not None:
        add("created_at <= ?", query.created_before)
    if query.created_after is not None:
        add("created_at >= ?", query.created_after)
    if query.decided_before is not None:
        add("COALESCE(decided_at, created_at) <= ?", query.decided_before)
    if query.decided_after is not None:
        add("decided_at >= ?", query.decided_after)
    if query.escalated is not None:
        add("escalated_at IS NOT NULL" if query.escalated else "escalated_at IS NULL")
    if query.purged is not None:
        add("purged_at IS NOT NULL" if query.purged else "purged_at IS NULL")
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", values


def page(limit: int | None, offset: int) -> tuple[str, list[Any]]:
    if limit is None and not offset:
        return "", []
    return " LIMIT ? OFFSET ?", [-1 if limit is None else max(0, limit), max(0, offset)]


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
        clauses.append("hold_id = ?")
        values.append(query.hold_id)
    if query.event:
        clauses.append("event = ?")
        values.append(query.event)
    if query.actor:
        clauses.append("instr(py_lower(actor), ?) > 0")
        values.append(query.actor.lower())
    if query.since is not None:
        clauses.append("at >= ?")
        values.append(query.since)
    for word in query.words:
        # The data is JSON with non-ASCII escaped; decode it so words match as shown.
        clauses.append(f"instr(py_lower({_HAYSTACK}), ?) > 0")
        values.append(word.lower())
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", values


def select_audit(columns: str, query: AuditQuery) -> tuple[str, list[Any]]:
    where, values = audit_where(query)
    order = "seq" if query.oldest_first else "seq DESC"
    paging, more = page(query.limit, query.offset)
    return f"SELECT {columns} FROM audit{where} ORDER BY {order}{paging}", values + more  # noqa: S608


def count_audit(query: AuditQuery) -> tuple[str, list[Any]]:
    where, values = audit_where(query)
    return f"SELECT count(*) FROM audit{where}", values  # noqa: S608
