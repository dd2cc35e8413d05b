"""Decide whether a recipient domain is a secure destination. A pure function of facts.

A domain is secure when it is on the allowlist and every MX host it may use reaches the
required transport level: DANE (usable TLSA records under DNSSEC) or an MTA-STS policy whose
mode and mx patterns cover the host. Anything unproven fails closed: a permanent failure makes
the domain not secure, a temporary one leaves it undetermined, and neither relays flagged mail.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from gateway.core.allowlist import AllowlistMatch, MatchStatus
from gateway.core.model import (
    Action,
    DaneHostStatus,
    DomainFacts,
    DomainVerdict,
    MxStatus,
    PolicyStatus,
    Reason,
    RecipientDecision,
    RecordStatus,
    Requirement,
    StsMode,
    Transport,
    Verdict,
)
from gateway.core.mtasts import mx_matches


@dataclass
class _Findings:
    permanent: list[Reason] = field(default_factory=list)
    temporary: list[Reason] = field(default_factory=list)

    def add(self, reason: Reason, *, temporary: bool = False) -> None:
        target = self.temporary if temporary else self.permanent
        if reason not in target:
            target.append(reason)

    def merge(self, other: _Findings) -> None:
        for reason in other.permanent:
            self.add(reason)
        for reason in other.temporary:
            self.add(reason, temporary=True)


def decide_domain(
    match: AllowlistMatch, facts: DomainFacts, requirement: Requirement
) -> DomainVerdict:
    findings = _Findings()
    if match.status is MatchStatus.NONE:
        findings.add(Reason.NOT_ALLOWLISTED)
    elif match.status is MatchStatus.EXPIRED:
        findings.add(Reason.ALLOWLIST_EXPIRED)

    level = _transport(facts, requirement, findings)

    if requirement.require_tls_rpt:
        # RFC 8460: a published record shows the domain watches its TLS failures.
        if facts.tls_rpt.status is RecordStatus.TEMPORARY:
            findings.add(Reason.DNS_TEMPORARY_ERROR, temporary=True)
        elif facts.tls_rpt.status is not RecordStatus.FOUND:
            findings.add(Reason.NO_TLS_RPT)

    if findings.permanent:
        extra = [r for r in findings.temporary if r not in findings.permanent]
        reasons = findings.permanent + extra
        return DomainVerdict(facts.domain, Verdict.NOT_SECURE, tuple(reasons), level)
    if findings.temporary:
        return DomainVerdict(facts.domain, Verdict.UNDETERMINED, tuple(findings.temporary), level)
    return DomainVerdict(facts.domain, Verdict.SECURE, (), level)


def _transport(facts: DomainFacts, requirement: Requirement, findings: _Findings) -> Transport:
    """The level every usable MX host reaches; shortfalls go into ``findings``."""
    mx = facts.mx
    if mx.status is MxStatus.TEMPORARY:
        findings.add(Reason.DNS_TEMPORARY_ERROR, temporary=True)
        return Transport.NONE
    if mx.status is MxStatus.NULL:
        findings.add(Reason.NULL_MX)  # RFC 7505: the domain accepts no mail
        return Transport.NONE
    if mx.status is MxStatus.NXDOMAIN:
        findings.add(Reason.NO_SUCH_DOMAIN)
        return Transport.NONE
    hosts = mx.hosts if mx.status is MxStatus.FOUND else (facts.domain,)
    if not hosts:
        findings.add(Reason.NULL_MX)
        return Transport.NONE

    lowest = Transport.DANE
    for host in hosts:
        host_findings = _Findings()
        level = _host_level(host, facts, requirement, host_findings)
        if level < requirement.minimum:
            findings.merge(host_findings)
        lowest = min(lowest, level)
    return lowest


def _host_level(
    host: str, facts: DomainFacts, requirement: Requirement, findings: _Findings
) -> Transport:
    dane = _dane_level(host, facts, requirement, findings)
    if dane is not None:
        return dane
    if requirement.minimum is Transport.DANE:
        return Transport.NONE  # MTA-STS cannot meet a DANE requirement
    return _sts_level(host, facts, requirement, findings)


def _dane_level(
    host: str, facts: DomainFacts, requirement: Requirement, findings: _Findings
) -> Transport | None:
    """DANE's verdict on a host, or None when DANE does not apply and MTA-STS decides."""
    need_dane = requirement.minimum is Transport.DANE
    if not facts.dane.resolver_trusted:
        if need_dane:
            findings.add(Reason.DANE_RESOLVER_UNTRUSTED)
        return None
    if not facts.mx.dnssec:
        if need_dane:
            findings.add(Reason.DANE_NOT_DNSSEC)
        return None
    host_facts = facts.dane_host(host)
    status = host_facts.status if host_facts is not None else DaneHostStatus.INSECURE
    if status is DaneHostStatus.USABLE:
        return Transport.DANE
    if status is DaneHostStatus.UNUSABLE:
        # RFC 7672 §2.2: TLSA present but unusable: TLS without authentication, and
        # RFC 8461 §2 gives DANE precedence, so MTA-STS does not rescue the host.
        findings.add(Reason.DANE_UNUSABLE)
        return Transport.NONE
    if status is DaneHostStatus.TEMPORARY:
        # RFC 7672 §2.2.1: a secure host whose TLSA lookup fails is unusable, no fall-back.
        findings.add(Reason.DNS_TEMPORARY_ERROR, temporary=True)
        return Transport.NONE
    if need_dane:
        findings.add(
            Reason.DANE_NO_TLSA if status is DaneHostStatus.NONE else Reason.DANE_NOT_DNSSEC
        )
    return None


def _sts_level(
    host: str, facts: DomainFacts, requirement: Requirement, findings: _Findings
) -> Transport:
    policy_facts = facts.sts_policy
    policy = policy_facts.policy
    if policy_facts.status is not PolicyStatus.OK or policy is None:
        _sts_failure(facts, findings)
        return Transport.NONE
    if policy.mode is StsMode.NONE:
        findings.add(Reason.STS_MODE_NONE)
        return Transport.NONE
    if not any(mx_matches(pattern, host) for pattern in policy.mx):
        findings.add(Reason.STS_MX_MISMATCH)  # §4.1
        return Transport.NONE
    if policy.mode is StsMode.TESTING:
        if requirement.minimum > Transport.MTA_STS_TESTING:
            findings.add(Reason.STS_MODE_TESTING)
        return Transport.MTA_STS_TESTING
    return Transport.MTA_STS_ENFORCE


def _sts_failure(facts: DomainFacts, findings: _Findings) -> None:
    status = facts.sts_policy.status
    if status is PolicyStatus.FETCH_ERROR:
        findings.add(Reason.STS_POLICY_FETCH_ERROR, temporary=facts.sts_policy.temporary)
    elif status is PolicyStatus.WEBPKI_INVALID:
        findings.add(Reason.STS_WEBPKI_INVALID)
    elif status is PolicyStatus.INVALID:
        findings.add(Reason.STS_POLICY_INVALID)
    else:
        record_reasons = {
            RecordStatus.NONE: Reason.STS_NO_RECORD,
            RecordStatus.MULTIPLE: Reason.STS_MULTIPLE_RECORDS,
            RecordStatus.INVALID: Reason.STS_RECORD_INVALID,
            RecordStatus.TEMPORARY: Reason.DNS_TEMPORARY_ERROR,
        }
        reason = record_reasons.get(facts.sts_record.status, Reason.STS_NO_RECORD)
        findings.add(reason, temporary=reason is Reason.DNS_TEMPORARY_ERROR)


@dataclass(frozen=True)
class SenderCheck:
    """The envelope sender's and From: header's domains, and whether each may send flagged
    mail (on the allowlist, or one of the organisation's own domains)."""

    allowed: bool
    domains: tuple[str, ...]


def check_sender(domains: Sequence[str | None], allowed: Callable[[str], bool]) -> SenderCheck:
    """``domains`` holds None for an address that could not be read: that fails the check,
    and so does having none at all."""
    readable = tuple(d for d in domains if d is not None)
    ok = bool(domains) and len(readable) == len(domains) and all(map(allowed, readable))
    return SenderCheck(ok, readable)


def decide_recipients(
    recipients: Sequence[tuple[str, str | None]],
    verdicts: Mapping[str, DomainVerdict],
    sender: SenderCheck,
    on_temporary: Action,
) -> tuple[RecipientDecision, ...]:
    """Per recipient of a flagged message: relay only to a proven-secure domain from an allowed
    sender; hold the rest; with ``on_temporary=TEMPFAIL`` an undetermined domain makes the
    whole message temp-fail, so the MTA retries rather than a reviewer waiting on DNS."""
    decisions = []
    for recipient, domain in recipients:
        if domain is None:
            decisions.append(
                RecipientDecision(recipient, "", Action.HOLD, (Reason.RECIPIENT_INVALID,))
            )
            continue
        verdict = verdicts[domain]
        reasons = list(verdict.reasons)
        if not sender.allowed:
            reasons.insert(0, Reason.SENDER_NOT_ALLOWED)
        if verdict.verdict is Verdict.UNDETERMINED and sender.allowed:
            action = on_temporary
        elif verdict.secure and sender.allowed:
            action = Action.RELAY
        else:
            action = Action.HOLD
        decisions.append(
            RecipientDecision(recipient, domain, action, tuple(reasons), verdict.transport)
        )
    return tuple(decisions)


def today_utc(now: float) -> dt.date:
    """The UTC calendar date of a POSIX time, for allowlist expiry."""
    return dt.datetime.fromtimestamp(now, dt.UTC).date()
