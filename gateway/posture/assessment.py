"""A recipient domain's posture: its allowlist entry, its live transport facts, the verdict."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass

from gateway.config.settings import Settings
from gateway.core.allowlist import Allowlist, AllowlistMatch
from gateway.core.model import DomainFacts, DomainVerdict
from gateway.core.policy import decide_domain, today_utc
from gateway.posture.domaincheck import DomainChecker


@dataclass(frozen=True)
class Assessment:
    match: AllowlistMatch
    facts: DomainFacts
    verdict: DomainVerdict


class Posture:
    """Answers "is this recipient domain a secure destination?" from live facts."""

    def __init__(self, settings: Settings, allowlist: Allowlist, checker: DomainChecker) -> None:
        self.settings = settings
        self.allowlist = allowlist
        self.checker = checker

    async def assess(self, domain: str, today: dt.date | None = None) -> Assessment:
        facts = await self.checker.facts(domain)
        match = self.allowlist.match(domain, today or today_utc(time.time()))
        verdict = decide_domain(match, facts, self.settings.policy.requirement)
        return Assessment(match, facts, verdict)
