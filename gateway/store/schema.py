"""How the store writes its records as JSON, the same for every backend.

An assessment record is a versioned object of its own (``ASSESSMENT_VERSION``). Holds written
by releases before it kept the ``gateway check --json`` object (version 1 of that format);
``assessment_from_json`` reads both, since the fields the record keeps sit at the same places.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from gateway.core.securelink import CodeCheck, CodeFacts, CodeOutcome
from gateway.store.assessment import AssessmentRecord, DaneHostRecord, HoldFacts
from gateway.store.changes import (
    Decide,
    DeliveryDone,
    DeliveryPending,
    Escalate,
    HoldChange,
    SendLinks,
)
from gateway.store.links import Link
from gateway.store.records import HeldRecipient, Hold, NewHold, Status

ASSESSMENT_VERSION = 2  # 1 was the `gateway check --json` layout this one grew out of


def assessment_json(record: AssessmentRecord) -> dict[str, Any]:
    return {
        "version": ASSESSMENT_VERSION,
        "domain": record.domain,
        "verdict": record.verdict,
        "transport": record.transport,
        "reasons": list(record.reasons),
        "allowlist": {"status": record.allowlist, "entry": record.allowlist_entry or None},
        "mx": {
            "status": record.mx_status,
            "hosts": list(record.mx_hosts),
            "dnssec": record.mx_dnssec,
        },
        "mta_sts": {
            "record": {"status": record.sts_record, "id": record.sts_id or None},
            "policy": {
                "status": record.sts_policy,
                "mode": record.sts_mode or None,
                "mx": list(record.sts_mx),
                "covers_mx": record.sts_covers_mx,
            },
        },
        "tls_rpt": {"status": record.tls_rpt, "rua": list(record.tls_rpt_rua)},
        "dane": {
            "status": record.dane,
            "hosts": [
                {"host": h.host, "status": h.status, "tlsa": list(h.tlsa)}
                for h in record.dane_hosts
            ],
        },
    }


def assessment_from_json(data: Mapping[str, Any]) -> AssessmentRecord:
    """A record from this module's JSON, or from the check JSON of earlier releases."""
    allowlist = _part(data, "allowlist")
    mx = _part(data, "mx")
    sts = _part(data, "mta_sts")
    record, policy = _part(sts, "record"), _part(sts, "policy")
    rpt, dane = _part(data, "tls_rpt"), _part(data, "dane")
    entry = allowlist.get("entry")
    if isinstance(entry, Mapping):  # the check JSON kept the whole allowlist entry
        entry = entry.get("name")
    return AssessmentRecord(
        domain=str(data.get("domain", "")),
        verdict=str(data.get("verdict", "")),
        transport=str(data.get("transport", "")),
        reasons=_strings(data.get("reasons")),
        allowlist=str(allowlist.get("status") or ""),
        allowlist_entry=str(entry or ""),
        mx_status=str(mx.get("status") or ""),
        mx_hosts=_strings(mx.get("hosts")),
        mx_dnssec=bool(mx.get("dnssec")),
        sts_record=str(record.get("status") or ""),
        sts_id=str(record.get("id") or ""),
        sts_policy=str(policy.get("status") or ""),
        sts_mode=str(policy.get("mode") or ""),
        sts_mx=_strings(policy.get("mx")),
        sts_covers_mx=_optional_bool(policy.get("covers_mx")),
        tls_rpt=str(rpt.get("status") or ""),
        tls_rpt_rua=_strings(rpt.get("rua")),
        dane=str(dane.get("status") or ""),
        dane_hosts=tuple(
            DaneHostRecord(
                str(h.get("host", "")), str(h.get("status", "")), _strings(h.get("tlsa"))
            )
            for h in dane.get("hosts") or ()
            if isinstance(h, Mapping)
        ),
    )


def assessments_json(records: Sequence[AssessmentRecord]) -> dict[str, Any]:
    """Domain -> record: the form the audit trail's "relayed" entries carry."""
    return {record.domain: assessment_json(record) for record in records}


def facts_json(facts: HoldFacts) -> dict[str, Any]:
    data: dict[str, Any] = {
        "version": ASSESSMENT_VERSION,
        "assessments": [assessment_json(r) for r in facts.assessments],
    }
    if facts.upstream_refusals:
        data["upstream_refusals"] = dict(facts.upstream_refusals)
    if facts.delivery_hosts:
        data["delivery_hosts"] = {k: list(v) for k, v in facts.delivery_hosts.items()}
    return data


def facts_from_json(data: Mapping[str, Any]) -> HoldFacts:
    """A hold's facts; also the form earlier releases wrote (domain -> check JSON, beside
    "upstream_refusals")."""
    refusals = data.get("upstream_refusals")
    refused = {str(k): str(v) for k, v in refusals.items()} if isinstance(refusals, Mapping) else {}
    if "assessments" in data:
        found = [r for r in data["assessments"] if isinstance(r, Mapping)]
    else:
        found = [v for k, v in data.items() if k != "upstream_refusals" and isinstance(v, Mapping)]
    tried = data.get("delivery_hosts")
    hosts = {str(k): _strings(v) for k, v in tried.items()} if isinstance(tried, Mapping) else {}
    return HoldFacts(tuple(assessment_from_json(r) for r in found), refused, hosts)


def stored_data(encoded: str, data: Mapping[str, Any]) -> str:
    """An audit entry's data as its row keeps it: the canonical text the MAC covers
    (``auditchain.encode_data``), with sorted keys and no spaces, when it is ASCII; else the
    same with non-ASCII escaped, so that U+0000 and lone surrogates stay printable text
    (PostgreSQL's text refuses U+0000). Rows read back through ``json.loads``: rows written
    before, with spaces after the separators, read the same."""
    if encoded.isascii():
        return encoded
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def recipient_json(recipient: HeldRecipient) -> dict[str, Any]:
    return {
        "address": recipient.address,
        "domain": recipient.domain,
        "reasons": list(recipient.reasons),
        "options": list(recipient.options),
    }


def recipient_from_json(data: Mapping[str, Any]) -> HeldRecipient:
    return HeldRecipient(
        data["address"], data["domain"], tuple(data["reasons"]), tuple(data.get("options", ()))
    )


def _part(data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = data.get(name)
    return value if isinstance(value, Mapping) else {}


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list | tuple) else ()


def _optional_bool(value: Any) -> bool | None:
    return None if value is None else bool(value)


def change_columns(change: HoldChange, text: Callable[[str], str] = str) -> dict[str, Any]:
    """The columns a change writes, with their stored values; free text through ``text`` (a
    backend whose text cannot hold every character passes its cleaner)."""
    match change:
        case Decide(status, at, by, reason):
            return {
                "status": status.value,
                "decided_at": at,
                "decided_by": text(by),
                "decision": text(reason),
            }
        case SendLinks(at, by, reason, _links):
            # The links themselves are rows of their own, inserted by the backend in the
            # same transaction once this compare-and-set has succeeded.
            return {
                "status": Status.LINKED.value,
                "decided_at": at,
                "decided_by": text(by),
                "decision": text(reason),
            }
        case Escalate(at):
            return {"escalated_at": at}
        case DeliveryPending(error, delivered):
            columns: dict[str, Any] = {"last_error": text(error), "attempt_at": None}
            if delivered is not None:
                columns["delivered"] = json.dumps(list(delivered))
            return columns
        case DeliveryDone(delivered, refused):
            return {
                "status": Status.RELEASED.value,
                "delivered": json.dumps(list(delivered)),
                "refused": json.dumps(dict(refused)),
                "last_error": "",
                "attempt_at": None,
            }
    raise TypeError(f"not a hold change: {change!r}")


def hold_from_row(row: Sequence[Any]) -> Hold:
    """A hold from its columns in the order both backends select them. The recipients are
    JSON text (SQLite) or already decoded (PostgreSQL's jsonb)."""
    (hold_id, key, status, created_at, sender, recipients, mail_options, size, client,
     message_id, findings, facts, subject, decided_at, decided_by, decision, escalated_at,
     purged_at, delivered, refused, last_error, attempt_at, attempt_by) = row  # fmt: skip
    return Hold(
        id=hold_id,
        key=key,
        status=Status(status),
        created_at=created_at,
        sender=sender,
        recipients=tuple(
            recipient_from_json(r)
            for r in (json.loads(recipients) if isinstance(recipients, str) else recipients)
        ),
        mail_options=tuple(json.loads(mail_options)),
        size=size,
        client=client,
        message_id=message_id,
        findings=tuple(json.loads(findings)),
        facts=facts_from_json(json.loads(facts)),
        subject=subject,
        decided_at=decided_at,
        decided_by=decided_by,
        decision=decision,
        escalated_at=escalated_at,
        purged_at=purged_at,
        delivered=tuple(json.loads(delivered)),
        refused=json.loads(refused),
        last_error=last_error,
        attempt_at=attempt_at,
        attempt_by=attempt_by,
    )


# The columns of a secure link, in the order both backends select them (``link_from_row``).
LINK_COLUMNS = (
    "id, hold_id, recipient, token_digest, created_at, created_by, expires_at, code_digest,"
    " code_expires_at, code_attempts, codes_sent, code_sent_at, revoked_at, revoked_by,"
    " locked_at, opened_at, unopened_noticed_at"
)


def fresh_hold(
    hold_id: str, created_at: float, new: NewHold, text: Callable[[str], str] = str
) -> Hold:
    """The hold as its row will read back once inserted (``hold_from_row``): the store builds
    it before its write transaction, so that what is made of a new hold (notices, audit
    records) is made outside the writer's lock. Built from ``new`` itself, not by decoding
    the JSON just encoded for the row: what the row keeps of it is exactly these values (the
    JSON of a record reads back as the record), free text through ``text``, the backend's
    cleaner, as the row keeps it. The columns a new row leaves to their defaults are Hold's
    defaults: undecided, unescalated, unpurged, unsent."""
    return Hold(
        id=hold_id,
        key=new.key,
        status=Status.HELD,
        created_at=created_at,
        sender=text(new.sender),
        recipients=tuple(
            HeldRecipient(
                text(r.address),
                text(r.domain),
                tuple(text(reason) for reason in r.reasons),
                tuple(text(option) for option in r.options),
            )
            for r in new.recipients
        ),
        mail_options=tuple(new.mail_options),
        size=len(new.message),
        client=text(new.client),
        message_id=text(new.message_id),
        findings=tuple(new.findings),
        facts=new.facts,
        subject=text(new.subject),
    )


def link_from_row(row: Sequence[Any]) -> Link:
    (link_id, hold_id, recipient, token, created_at, created_by, expires_at, digest,
     code_expires_at, attempts, sent, sent_at, revoked_at, revoked_by, locked_at, opened_at,
     noticed_at) = row  # fmt: skip
    return Link(
        id=link_id,
        hold_id=hold_id,
        recipient=recipient,
        token_digest=token,
        created_at=created_at,
        created_by=created_by,
        expires_at=expires_at,
        code=CodeFacts(digest, code_expires_at, attempts, sent, sent_at),
        revoked_at=revoked_at,
        revoked_by=revoked_by,
        locked_at=locked_at,
        opened_at=opened_at,
        unopened_noticed_at=noticed_at,
    )


def code_address(address: str) -> str:
    """The form an address is counted under for the portal's limit of codes per address:
    folded, so that changing the case of a local part does not buy more codes."""
    return address.casefold()


def entered_values(
    link_id: str, expect_attempts: int, outcome: CodeOutcome, at: float
) -> tuple[Any, ...]:
    """The parameters of the "code entered" compare-and-set, in both backends' order."""
    locks = at if outcome.check is CodeCheck.LOCKED else None
    used = outcome.check is CodeCheck.OK
    none_sent = outcome.check is CodeCheck.NONE_SENT
    return (outcome.attempts, locks, used, link_id, expect_attempts, none_sent)
