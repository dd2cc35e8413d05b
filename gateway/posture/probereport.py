"""How `gateway check --probe` shows what each MX host did: text rows under the posture table,
and a ``probe`` object in each domain of the JSON (``report.JSON_VERSION`` 1: fields added).
"""

from __future__ import annotations

from typing import Any

from gateway.core.timefmt import iso_utc
from gateway.posture.certinfo import Certificate
from gateway.posture.probe import HostProbe, Requirement
from gateway.posture.probeverdict import DomainProbe, JudgedHost

_REQUIREMENT = {
    Requirement.DANE: "DANE",
    Requirement.MTA_STS: "MTA-STS enforce",
    Requirement.NONE: "no policy",
}


def probe_json(result: DomainProbe) -> dict[str, Any]:
    return {
        "at": iso_utc(result.at),
        "secure": result.secure,
        "summary": result.summary,
        "hosts": [_host_json(j, result.at) for j in result.hosts],
    }


def _host_json(j: JudgedHost, now: float) -> dict[str, Any]:
    p, cert = j.probe, j.probe.certificate
    return {
        "host": p.host,
        "address": p.address or None,
        "port": p.port,
        "requirement": p.requirement or None,
        "meets_policy": j.meets,
        "why": j.why,
        "reachable": p.reachable,
        "skipped": list(p.skipped),
        "greeting": p.greeting or None,
        "starttls": p.starttls,
        "tls_version": p.tls_version or None,
        "cipher": p.cipher or None,
        "certificate": _cert_json(cert, now, p.chain_length) if cert else None,
        "webpki": {"verified": p.webpki, "error": p.webpki_error or None},
        "dane": {
            "tlsa": [str(record) for record in p.tlsa],
            "matched": p.dane.value if p.dane else None,
        },
        "in_sts_policy": p.in_policy,
        "requiretls": p.requiretls,
        "error": p.error or None,
        "elapsed_ms": p.elapsed_ms,
    }


def _cert_json(cert: Certificate, now: float, chain_length: int) -> dict[str, Any]:
    return {
        "subject": cert.subject,
        "names": list(cert.names),
        "issuer": cert.issuer,
        "self_signed": cert.self_signed,
        "not_before": iso_utc(cert.not_before),
        "not_after": iso_utc(cert.not_after),
        "days_left": cert.days_left(now),
        "chain_length": chain_length,
    }


# --- The human rows ----------------------------------------------------------------------------


def probe_text(result: DomainProbe) -> str:
    """Rows in the voice of ``report.to_text``: a summary, then a block per MX host."""
    state = "SECURE" if result.secure else "NOT SECURE"
    lines = [f"  {'probe':<10} {state}: {result.summary}"]
    for j in result.hosts:
        lines += _host_lines(j, result.at)
    return "\n".join(lines) + "\n"


def _host_lines(j: JudgedHost, now: float) -> list[str]:
    p = j.probe
    where = f"{p.host} [{p.address}]:{p.port}" if p.address else f"{p.host}:{p.port}"
    verdict = {True: "meets", False: "FAILS", None: "-"}[j.meets]
    head = f"{where} ({_REQUIREMENT[p.requirement]})"
    lines = [f"  {'':<10} {head:<56} {verdict:>5} {p.elapsed_ms:>7.1f} ms"]
    rows = [("result", j.why), *_fact_rows(p, now)]
    lines += [f"  {'':<12} {label:<12} {text}" for label, text in rows if text]
    return lines


def _fact_rows(p: HostProbe, now: float) -> list[tuple[str, str]]:
    rows = [("skipped", a) for a in p.skipped]
    if not p.reachable:
        return rows
    rows += [("greeting", p.greeting), ("starttls", _starttls_text(p))]
    if p.tls_version:
        rows.append(("tls", f"{p.tls_version}, {p.cipher}"))
    if p.certificate is not None:
        rows += _cert_rows(p.certificate, now, p.chain_length)
        rows.append(("webpki", _webpki_text(p)))
    if p.tlsa:
        rows.append(("dane", _dane_text(p)))
    if p.in_policy is not None:
        named = "named by" if p.in_policy else "NOT named by"
        rows.append(("mta-sts", f"{named} the policy's mx patterns"))
    if p.tls_version:
        rows.append(("requiretls", _requiretls_text(p)))
    if p.error and p.tls_version:
        rows.append(("error", p.error))
    return rows


def _starttls_text(p: HostProbe) -> str:
    if p.starttls is None:
        return f"not reached: {p.error}" if p.error else ""
    if not p.starttls:
        return "NOT offered: mail to this host would travel in plaintext"
    return "offered" if p.tls_version else f"offered, but {p.error}"


def _cert_rows(cert: Certificate, now: float, chain_length: int) -> list[tuple[str, str]]:
    days = cert.days_left(now)
    expiry = f"{iso_utc(cert.not_after)} ({days} days left)"
    if days < 0:
        expiry = f"EXPIRED {iso_utc(cert.not_after)} ({-days} days ago)"
    issuer = "self-signed" if cert.self_signed else f"issued by {cert.issuer}"
    names = ", ".join(cert.names) or f"no DNS names (subject {cert.subject})"
    return [
        ("names", names),
        ("expires", expiry),
        ("issuer", f"{issuer}; {chain_length} certificate(s) presented"),
    ]


def _webpki_text(p: HostProbe) -> str:
    if p.webpki:
        return f"verified for {p.host}"
    return f"does NOT verify for {p.host}: {p.webpki_error}"


def _dane_text(p: HostProbe) -> str:
    count = f"{len(p.tlsa)} usable TLSA record(s)"
    if p.dane is None:
        return f"{count}; no certificate to match"
    if p.dane.value == "none":
        return f"{count}; the certificate matches NONE of them"
    return f"{count}; matched ({p.dane.value})"


def _requiretls_text(p: HostProbe) -> str:
    if p.requiretls is None:
        return "not known (no EHLO answer after STARTTLS)"
    return "advertised after STARTTLS" if p.requiretls else "not advertised"
