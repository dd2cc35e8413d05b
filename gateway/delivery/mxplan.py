"""Which MX hosts a message may go to, and what TLS each must prove: a pure function of the
domain facts the verdict saw (TRANSPORT-SECURITY.md, "Delivery").

Per host, in MX preference order:

* usable TLSA records (RFC 7672 §2.2, DNSSEC-secure): DANE governs; nothing else can rescue a
  host that fails it;
* else an MTA-STS policy in ``enforce`` mode (RFC 8461 §4-5): only hosts its ``mx`` patterns
  name, each authenticated under WebPKI for its own name;
* else, for flagged mail, the host is not a candidate; for other mail, opportunistic TLS, or
  TLS without authentication where unusable TLSA records make it mandatory (RFC 7672 §2.2).

A secure host whose TLSA lookup failed is no candidate at all (RFC 7672 §2.2.2: no fallback).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from gateway.core import mtasts
from gateway.core.model import (
    DaneHostStatus,
    DomainFacts,
    MxStatus,
    PolicyStatus,
    StsMode,
    StsPolicy,
    TlsaRecord,
)
from gateway.delivery.transport import Outcome, Reply, failure


class Requirement(StrEnum):
    """What a host's TLS session must prove before the message goes."""

    DANE = "dane"  # STARTTLS, the chain matches a usable TLSA record
    MTA_STS = "mta-sts"  # STARTTLS, TLS 1.2+, WebPKI-valid for the MX host name
    ENCRYPT = "encrypt"  # STARTTLS mandatory, peer not authenticated (unusable TLSA)
    OPPORTUNISTIC = "opportunistic"  # STARTTLS when offered, plaintext otherwise

    @property
    def authenticates(self) -> bool:
        return self in (Requirement.DANE, Requirement.MTA_STS)

    @property
    def mandatory(self) -> bool:
        return self is not Requirement.OPPORTUNISTIC


@dataclass(frozen=True)
class Candidate:
    host: str
    requirement: Requirement
    tlsa: tuple[TlsaRecord, ...] = ()


@dataclass(frozen=True)
class Plan:
    candidates: tuple[Candidate, ...]
    # Hosts that are no candidate, a line each ("mx2.x.test: not named by the policy").
    passed_over: tuple[str, ...] = ()


def mx_hosts(facts: DomainFacts) -> tuple[str, ...]:
    """The hosts to try, by preference; raises ``DeliveryFailed`` when there are none."""
    mx = facts.mx
    if mx.status is MxStatus.FOUND:
        return mx.hosts
    if mx.status is MxStatus.IMPLICIT:
        return (facts.domain,)  # RFC 5321 §5.1: no MX, the domain itself
    if mx.status is MxStatus.NULL:
        # RFC 7505 §3: the domain accepts no mail.
        raise failure(Reply(556, "5.1.10 recipient domain accepts no mail (null MX)"), "MX")
    if mx.status is MxStatus.NXDOMAIN:
        raise failure(Reply(550, "5.1.2 recipient domain does not exist"), "MX")
    reply = Reply(451, f"4.4.3 MX lookup failed: {mx.error or 'temporary DNS error'}")
    raise failure(reply, "MX", Outcome.DEFERRED)


def plan(facts: DomainFacts, flagged: bool) -> Plan:
    candidates: list[Candidate] = []
    passed_over: list[str] = []
    policy = enforced_policy(facts)
    for host in mx_hosts(facts):
        candidate, why = _candidate(facts, host, policy, flagged)
        if candidate is not None:
            candidates.append(candidate)
        else:
            passed_over.append(f"{host}: {why}")
    return Plan(tuple(candidates), tuple(passed_over))


def enforced_policy(facts: DomainFacts) -> StsPolicy | None:
    sts = facts.sts_policy
    if sts.status is PolicyStatus.OK and sts.policy is not None:
        return sts.policy if sts.policy.mode is StsMode.ENFORCE else None
    return None


def _candidate(
    facts: DomainFacts, host: str, policy: StsPolicy | None, flagged: bool
) -> tuple[Candidate | None, str]:
    dane = facts.dane_host(host)
    status = dane.status if dane is not None else DaneHostStatus.INSECURE
    if status is DaneHostStatus.USABLE:
        assert dane is not None
        return Candidate(host, Requirement.DANE, dane.tlsa), ""
    if status is DaneHostStatus.TEMPORARY:
        # RFC 7672 §2.2.2: a secure host whose TLSA lookup failed is not used, and MTA-STS
        # does not stand in for it.
        return None, "TLSA lookup failed; host not used"
    if policy is not None:
        if any(mtasts.mx_matches(pattern, host) for pattern in policy.mx):
            return Candidate(host, Requirement.MTA_STS), ""
        return None, "not named by the MTA-STS policy"  # RFC 8461 §4.1
    if status is DaneHostStatus.UNUSABLE:
        if flagged:
            return None, "TLSA records unusable: TLS would be unauthenticated"
        return Candidate(host, Requirement.ENCRYPT), ""
    if flagged:
        return None, "neither DANE nor an MTA-STS enforce policy authenticates this host"
    return Candidate(host, Requirement.OPPORTUNISTIC), ""
