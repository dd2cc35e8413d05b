"""The composition root: builds the gateway's parts from the settings, and nothing else does."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from gateway import allowlists
from gateway.config import Settings
from gateway.core.allowlist import Allowlist, AllowlistMatch
from gateway.core.model import DomainFacts, DomainVerdict
from gateway.core.policy import decide_domain, today_utc
from gateway.dns import DnsResolver
from gateway.domaincheck import DomainChecker
from gateway.stsdb import PolicyDb
from gateway.stsfetch import PolicyFetcher, default_client, tls_context

POLICY_DB = "sts-cache.sqlite3"


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


def data_dir(settings: Settings) -> Path:
    return settings.path(settings.store.data_dir)


def load_allowlist(settings: Settings) -> allowlists.Loaded:
    return allowlists.load(allowlists.expand(settings.allowlist.paths, settings.base_dir))


@asynccontextmanager
async def posture(settings: Settings, allowlist: Allowlist) -> AsyncIterator[Posture]:
    ca_file = settings.path(settings.mta_sts.ca_file) if settings.mta_sts.ca_file else None
    resolver = DnsResolver(settings.dns)
    cache = PolicyDb(data_dir(settings) / POLICY_DB)
    try:
        async with default_client(tls_context(ca_file), settings.mta_sts.fetch_timeout) as client:
            fetcher = PolicyFetcher(resolver, settings.mta_sts, client)
            yield Posture(settings, allowlist, DomainChecker(resolver, fetcher, cache))
    finally:
        cache.close()
