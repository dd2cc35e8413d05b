"""How `gateway check` shows a domain's posture: a readable table, or stable JSON.

The JSON layout is documented in README.md ("gateway check --json") and versioned: fields may
be added; none is renamed or removed without raising ``JSON_VERSION``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gateway.core.addresses import to_unicode
from gateway.core.allowlist import AllowlistEntry
from gateway.core.model import DomainFacts, PolicyStatus, StsPolicyFacts
from gateway.core.mtasts import uncovered_hosts
from gateway.core.timefmt import iso_utc
from gateway.posture.assessment import Assessment, dane_summary, mx_hosts

JSON_VERSION = 1


def to_json(assessments: Sequence[Assessment]) -> dict[str, Any]:
    return {"version": JSON_VERSION, "domains": [assessment_json(a) for a in assessments]}


def assessment_json(a: Assessment) -> dict[str, Any]:
    facts = a.facts
    return {
        "domain": facts.domain,
        "domain_unicode": to_unicode(facts.domain),
        "verdict": a.verdict.verdict.value,
        "reasons": [reason.value for reason in a.verdict.reasons],
        "transport": a.verdict.transport.label,
        "allowlist": {
            "status": a.match.status.value,
            "entry": _entry_json(a.match.entry) if a.match.entry else None,
        },
        "mx": {
            "status": facts.mx.status.value,
            "hosts": list(facts.mx.hosts),
            "dnssec": facts.mx.dnssec,
            "error": facts.mx.error or None,
        },
        "mta_sts": {
            "record": {
                "status": facts.sts_record.status.value,
                "id": facts.sts_record.id or None,
                "error": facts.sts_record.error or None,
            },
            "policy": _policy_json(facts),
        },
        "tls_rpt": {
            "status": facts.tls_rpt.status.value,
            "rua": list(facts.tls_rpt.rua),
            "error": facts.tls_rpt.error or None,
        },
        "dane": {
            "status": dane_summary(facts),
            "resolver_trusted": facts.dane.resolver_trusted,
            "hosts": [
                {
                    "host": host.host,
                    "status": host.status.value,
                    "tlsa": [str(record) for record in host.tlsa],
                    "error": host.error or None,
                }
                for host in facts.dane.hosts
            ],
        },
        "timings_ms": dict(facts.timings_ms),
    }


def _entry_json(entry: AllowlistEntry) -> dict[str, Any]:
    return {
        "name": entry.name,
        "note": entry.note,
        "owner": entry.owner,
        "source": entry.source,
        "expires": entry.expires.isoformat() if entry.expires else None,
        "file": entry.file,
        "line": entry.line,
    }


def _policy_json(facts: DomainFacts) -> dict[str, Any]:
    p: StsPolicyFacts = facts.sts_policy
    policy = p.policy
    uncovered = list(uncovered_hosts(policy, mx_hosts(facts))) if policy else []
    return {
        "status": p.status.value,
        "source": p.source.value or None,
        "mode": policy.mode.value if policy else None,
        "max_age": policy.max_age if policy else None,
        "mx": list(policy.mx) if policy else [],
        "covers_mx": (not uncovered) if policy else None,
        "uncovered": uncovered,
        "fetched_at": _iso(p.fetched_at),
        "expires_at": _iso(p.expires_at),
        "temporary": p.temporary if p.status is not PolicyStatus.OK else None,
        "error": p.error or None,
    }


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return iso_utc(timestamp)


# --- The human table --------------------------------------------------------------------------


def to_text(assessments: Sequence[Assessment]) -> str:
    return "\n".join(_domain_text(a) for a in assessments)


def _domain_text(a: Assessment) -> str:
    facts, verdict = a.facts, a.verdict
    title = facts.domain
    if to_unicode(facts.domain) != facts.domain:
        title += f" ({to_unicode(facts.domain)})"
    via = f" via {verdict.transport.label}" if verdict.secure else ""
    rows: list[tuple[str, str, str]] = [
        ("allowlist", _allowlist_text(a), ""),
        ("mx", _mx_text(facts), _timing(facts, "mx")),
        ("mta-sts", *_sts_text(facts)),
        ("tls-rpt", _rpt_text(facts), _timing(facts, "tls_rpt")),
        ("dane", _dane_text(facts), _timing(facts, "dane")),
    ]
    lines = [f"{title}  {verdict.verdict.value.upper()}{via}"]
    for label, text, timing in rows:
        first, *rest = text.split("\n")
        lines.append(f"  {label:<10} {first:<66} {timing:>9}".rstrip())
        lines.extend(f"  {'':<10} {more}" for more in rest)
    reasons = ", ".join(r.value for r in verdict.reasons) or "none"
    lines.append(f"  {'reasons':<10} {reasons}")
    lines.append(f"  {'total':<10} {'':<66} {_timing(facts, 'total'):>9}")
    return "\n".join(lines) + "\n"


def _timing(facts: DomainFacts, name: str) -> str:
    value = facts.timings_ms.get(name)
    return f"{value:.1f} ms" if value is not None else ""


def _allowlist_text(a: Assessment) -> str:
    entry = a.match.entry
    if entry is None:
        return "not on the allowlist"
    details = [d for d in (entry.note, entry.owner, entry.source) if d]
    if entry.expires:
        details.append(f"expires {entry.expires}")
    state = "EXPIRED " if a.match.status.value == "expired" else ""
    text = f"{state}{entry.name}" + (f" ({'; '.join(details)})" if details else "")
    return f"{text}\nfrom {entry.file}:{entry.line}"


def _mx_text(facts: DomainFacts) -> str:
    mx = facts.mx
    signed = ", DNSSEC-signed" if mx.dnssec else ""
    texts = {
        "found": ", ".join(mx.hosts),
        "implicit": f"no MX: {facts.domain} itself (RFC 5321 §5.1)",
        "null": "null MX: the domain accepts no mail (RFC 7505)",
        "nxdomain": "the domain does not exist",
        "temporary": f"lookup failed: {mx.error}",
    }
    return texts[mx.status.value] + signed


def _sts_text(facts: DomainFacts) -> tuple[str, str]:
    record, p = facts.sts_record, facts.sts_policy
    timing = _timing(facts, "mta_sts")
    if record.status.value == "found":
        head = f"record id {record.id}"
    else:
        head = f"record {record.status.value}" + (f": {record.error}" if record.error else "")
    policy = p.policy
    if p.status is PolicyStatus.OK and policy is not None:
        source = "from cache" if p.source.value == "cache" else "fetched"
        head += f"; policy {policy.mode.value}, max_age {policy.max_age} ({source})"
        uncovered = uncovered_hosts(policy, mx_hosts(facts))
        cover = "cover every MX host" if not uncovered else "miss " + ", ".join(uncovered)
        lines = [head, f"mx patterns {', '.join(policy.mx) or '-'}: {cover}"]
        if p.error:
            lines.append(p.error)
        return "\n".join(lines), timing
    if p.status is not PolicyStatus.NOT_FETCHED:
        return f"{head}\npolicy {p.status.value}: {p.error}", timing
    return head, timing


def _rpt_text(facts: DomainFacts) -> str:
    rpt = facts.tls_rpt
    if rpt.status.value == "found":
        return ", ".join(rpt.rua)
    return f"{rpt.status.value}" + (f": {rpt.error}" if rpt.error else "")


def _dane_text(facts: DomainFacts) -> str:
    summary = dane_summary(facts)
    if summary == "resolver-untrusted":
        return "not checked: the resolver is not trusted for DNSSEC ([dns] trust_ad)"
    if summary == "not-dnssec":
        return "MX records not DNSSEC-signed: DANE does not apply"
    hosts = "; ".join(f"{h.host} {h.status.value}" for h in facts.dane.hosts)
    return f"{summary} ({hosts})"
