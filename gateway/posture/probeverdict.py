"""A domain's probe, judged against the domain's own published policy.

A host meets the policy when it gives what delivery would demand of it (TRANSPORT-SECURITY.md,
"Delivery"): with usable TLSA records, STARTTLS and a chain matching one of them (RFC 7672
§2.2, §3); under an MTA-STS enforce policy, a host the policy names, STARTTLS, TLS 1.2 or
later and a certificate valid under WebPKI for the host (RFC 8461 §4-5). A host that fails
makes the domain not secure in the probe's summary, whatever its DNS posture says. A host that
does not answer fails nothing (delivery would try the next), but some host must pass.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from gateway.core.model import DaneHostStatus, DnsStatus, MxStatus, PolicyStatus, StsPolicy
from gateway.core.model import TlsaRecord as Tlsa
from gateway.delivery.transport import PeerAuth
from gateway.posture.assessment import Assessment, mx_hosts
from gateway.posture.dns import Resolver
from gateway.posture.probe import HostProbe, ProbeOptions, Requirement, probe


@dataclass(frozen=True)
class JudgedHost:
    probe: HostProbe
    meets: bool | None  # None: the policy asks nothing of it, or it did not answer
    why: str


@dataclass(frozen=True)
class DomainProbe:
    domain: str
    at: float
    secure: bool
    summary: str
    hosts: tuple[JudgedHost, ...]


def judge(p: HostProbe) -> JudgedHost:
    if not p.reachable:
        return JudgedHost(p, None, f"not reachable: {p.error}")
    if p.requirement == Requirement.NONE:
        tls = f"TLS offered ({p.tls_version})" if p.tls_version else "no TLS"
        return JudgedHost(p, None, f"no DANE or MTA-STS enforce policy applies; {tls}")
    failure = _dane_failure(p) if p.requirement == Requirement.DANE else _sts_failure(p)
    if failure:
        return JudgedHost(p, False, failure)
    if p.requirement == Requirement.DANE:
        assert p.dane is not None
        return JudgedHost(p, True, f"certificate matches a TLSA record ({p.dane.value})")
    return JudgedHost(p, True, f"certificate verifies for {p.host} (mta-sts-webpki)")


def _tls_failure(p: HostProbe, policy: str) -> str:
    if p.starttls is False:
        return f"no STARTTLS offered, which the {policy} requires"
    if not p.tls_version:
        return p.error or "no TLS session"
    return ""


def _dane_failure(p: HostProbe) -> str:
    failure = _tls_failure(p, "DANE policy (RFC 7672 §2.2)")
    if failure:
        return failure
    if p.dane is None or p.dane is PeerAuth.NONE:
        count = len(p.tlsa)
        return f"certificate matches none of its {count} usable TLSA record(s)"
    return ""


def _sts_failure(p: HostProbe) -> str:
    if p.in_policy is False:
        return "not named by the MTA-STS policy's mx patterns"
    failure = _tls_failure(p, "MTA-STS enforce policy (RFC 8461 §5)")
    if failure:
        return failure
    if not p.webpki:
        return f"certificate does not verify: {p.webpki_error or 'no reason given'}"
    return ""


def summarise(a: Assessment, hosts: tuple[JudgedHost, ...]) -> tuple[bool, str]:
    verdict = a.verdict
    if not verdict.secure:
        reasons = ", ".join(r.value for r in verdict.reasons) or "no reason given"
        return False, f"the DNS posture is {verdict.verdict.value} ({reasons})"
    failed = [h for h in hosts if h.meets is False]
    if failed:
        first = failed[0]
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        return False, f"{first.probe.host}: {first.why}{more}"
    passed = [h for h in hosts if h.meets]
    if not passed:
        return False, "no MX host could be reached to confirm the policy"
    text = f"{len(passed)} of {len(hosts)} MX host(s) met the domain's policy"
    silent = len(hosts) - len(passed)
    return True, text + (f"; {silent} did not answer" if silent else "")


async def probe_domain(a: Assessment, resolver: Resolver, options: ProbeOptions) -> DomainProbe:
    """Probe every MX host of an assessed domain, concurrently."""
    facts = a.facts
    at = time.time()
    if facts.mx.status not in (MxStatus.FOUND, MxStatus.IMPLICIT):
        nothing = {
            MxStatus.NULL: "nothing to probe: the domain accepts no mail (null MX)",
            MxStatus.NXDOMAIN: "nothing to probe: the domain does not exist",
        }.get(facts.mx.status, f"nothing to probe: MX lookup failed ({facts.mx.error})")
        return DomainProbe(facts.domain, at, False, nothing, ())
    policy = facts.sts_policy.policy if facts.sts_policy.status is PolicyStatus.OK else None
    tlsa = {h.host: h.tlsa for h in facts.dane.hosts if h.status is DaneHostStatus.USABLE}
    hosts = await asyncio.gather(
        *(
            _probe_one(host, resolver, tlsa.get(host, ()), policy, options)
            for host in mx_hosts(facts)
        )
    )
    judged = tuple(judge(h) for h in hosts)
    secure, summary = summarise(a, judged)
    return DomainProbe(facts.domain, at, secure, summary, judged)


async def _probe_one(
    host: str,
    resolver: Resolver,
    tlsa: tuple[Tlsa, ...],
    policy: StsPolicy | None,
    options: ProbeOptions,
) -> HostProbe:
    answer = await resolver.addresses(host)
    if answer.status is DnsStatus.TEMPORARY and not answer.records:
        return HostProbe(host, options.port, error=f"cannot resolve {host}: {answer.error}")
    return await probe(host, answer.records, tlsa, policy, options)


def host_facts(j: JudgedHost) -> dict[str, Any]:
    """One host's facts as the store keeps them (``ProbeRecord.hosts``)."""
    p, cert = j.probe, j.probe.certificate
    return {
        "host": p.host,
        "address": p.address,
        "port": p.port,
        "requirement": p.requirement or None,
        "meets": j.meets,
        "why": j.why,
        "reachable": p.reachable,
        "starttls": p.starttls,
        "tls_version": p.tls_version or None,
        "cipher": p.cipher or None,
        "names": list(cert.names) if cert else [],
        "not_after": cert.not_after if cert else None,
        "webpki": p.webpki,
        "dane": p.dane.value if p.dane else None,
        "requiretls": p.requiretls,
        "error": p.error or None,
    }
