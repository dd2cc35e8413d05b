"""A recipient domain's posture: its allowlist entry, its live transport facts, the verdict."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.config.settings import Settings
from gateway.core.allowlist import Allowlist, AllowlistMatch
from gateway.core.model import DaneHostStatus, DomainFacts, DomainVerdict
from gateway.core.mtasts import uncovered_hosts
from gateway.core.policy import decide_domain, today_utc
from gateway.posture.allowlists import InForce
from gateway.posture.domaincheck import DomainChecker
from gateway.posture.factsmemo import MEMO_ENTRIES
from gateway.store.assessment import AssessmentRecord, DaneHostRecord


@dataclass(frozen=True)
class Assessment:
    match: AllowlistMatch
    facts: DomainFacts
    verdict: DomainVerdict

    @functools.cached_property
    def record(self) -> AssessmentRecord:
        """``record_of`` this assessment, made once: a domain's assessment is the same object
        for every message while its facts are memoised (``Posture``)."""
        return record_of(self)


def record_of(a: Assessment) -> AssessmentRecord:
    """What the hold store and the audit trail keep of an assessment."""
    facts, policy = a.facts, a.facts.sts_policy.policy
    return AssessmentRecord(
        domain=facts.domain,
        verdict=a.verdict.verdict.value,
        transport=a.verdict.transport.label,
        reasons=tuple(reason.value for reason in a.verdict.reasons),
        allowlist=a.match.status.value,
        allowlist_entry=a.match.entry.name if a.match.entry else "",
        mx_status=facts.mx.status.value,
        mx_hosts=facts.mx.hosts,
        mx_dnssec=facts.mx.dnssec,
        sts_record=facts.sts_record.status.value,
        sts_id=facts.sts_record.id,
        sts_policy=facts.sts_policy.status.value,
        sts_mode=policy.mode.value if policy else "",
        sts_mx=tuple(policy.mx) if policy else (),
        sts_covers_mx=not uncovered_hosts(policy, mx_hosts(facts)) if policy else None,
        tls_rpt=facts.tls_rpt.status.value,
        tls_rpt_rua=facts.tls_rpt.rua,
        dane=dane_summary(facts),
        dane_hosts=tuple(
            DaneHostRecord(h.host, h.status.value, tuple(str(r) for r in h.tlsa))
            for h in facts.dane.hosts
        ),
    )


def mx_hosts(facts: DomainFacts) -> tuple[str, ...]:
    return facts.mx.hosts if facts.mx.hosts else (facts.domain,)


def dane_summary(facts: DomainFacts) -> str:
    if not facts.dane.resolver_trusted:
        return "resolver-untrusted"
    if not facts.dane.hosts:
        return "not-dnssec"
    statuses = {host.status for host in facts.dane.hosts}
    if statuses == {DaneHostStatus.USABLE}:
        return "usable"
    for status in (DaneHostStatus.TEMPORARY, DaneHostStatus.UNUSABLE):
        if status in statuses:
            return status.value
    if DaneHostStatus.USABLE in statuses:
        return "partial"
    return "none"


class Posture:
    """Answers "is this recipient domain a secure destination?" from live facts.

    The allowlist in force is one reference (``in_force``), replaced whole by ``use`` when the
    files are read again (SIGHUP): a caller that takes ``allowlist`` once and passes it on
    decides with one list from start to end, never half the old and half the new."""

    def __init__(
        self, settings: Settings, allowlist: Allowlist | InForce, checker: DomainChecker
    ) -> None:
        self.settings = settings
        self.in_force = allowlist if isinstance(allowlist, InForce) else InForce(allowlist)
        self.checker = checker
        # Made once: the settings do not change while the gateway runs (a reload re-reads the
        # allowlist only), and building it looks its level up by name.
        self._requirement = settings.policy.requirement
        # Each domain's last assessment: the verdict is a pure function of the facts, the
        # allowlist match and the requirement, so the same facts (the memo's, the same object)
        # with an equal match are the same verdict, and the same record for the trail.
        self._judged_last: dict[str, Assessment] = {}

    @property
    def allowlist(self) -> Allowlist:
        return self.in_force.allowlist

    def use(self, in_force: InForce) -> None:
        """Decide with this list from now on (assessments already started keep theirs), with
        every domain's facts checked afresh."""
        self.in_force = in_force
        self.checker.forget()
        self._judged_last.clear()

    async def assess(
        self, domain: str, today: dt.date | None = None, allowlist: Allowlist | None = None
    ) -> Assessment:
        """The domain's verdict, matched against ``allowlist`` (default: the one in force)."""
        listed = allowlist if allowlist is not None else self.allowlist
        facts = await self.checker.facts(domain)
        return self._judged(domain, facts, listed, today or today_utc(time.time()))

    async def assess_all(
        self, domains: Sequence[str], allowlist: Allowlist | None = None
    ) -> list[Assessment]:
        """Each domain's verdict, in order, every one from its own facts and allowlist match.
        Facts the memo has are judged at once; only the rest are checked, side by side: a
        message to five known domains makes no task at all, where it made five."""
        listed = allowlist if allowlist is not None else self.allowlist
        today = today_utc(time.time())
        known = [self.checker.known(domain) for domain in domains]
        missing = [d for d, facts in zip(domains, known, strict=True) if facts is None]
        if len(missing) == 1:
            fetched = {missing[0]: await self.checker.facts(missing[0])}
        elif missing:
            found = await asyncio.gather(*(self.checker.facts(d) for d in missing))
            fetched = dict(zip(missing, found, strict=True))
        else:
            fetched = {}
        return [
            self._judged(domain, facts if facts is not None else fetched[domain], listed, today)
            for domain, facts in zip(domains, known, strict=True)
        ]

    def _judged(
        self, domain: str, facts: DomainFacts, listed: Allowlist, today: dt.date
    ) -> Assessment:
        match = listed.match(domain, today)  # for every message: a reload applies at once
        last = self._judged_last.get(domain)
        if last is not None and last.facts is facts and last.match == match:
            return last
        judged = Assessment(match, facts, decide_domain(match, facts, self._requirement))
        if len(self._judged_last) >= MEMO_ENTRIES:
            self._judged_last.clear()  # a mail-merge to thousands of domains: start again
        self._judged_last[domain] = judged
        return judged
