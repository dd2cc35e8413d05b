"""`gateway check DOMAIN --probe` and `gateway allowlist check [--live]`: the posture of
recipient domains, and what their MX hosts actually do when dialled.

Every probe is recorded in the store (the domain's last probe, shown on the web allowlist
page). Exit status: 0 when every domain (entry) is secure, 1 when any is not
(``gateway.cli.exits``), 2 for a usage or configuration error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gateway import logs
from gateway.cli.exits import EXIT_FINDING, EXIT_OK
from gateway.config.settings import Settings
from gateway.core.allowlist import AllowlistEntry
from gateway.delivery.peer import webpki_context
from gateway.errors import ConfigError, SchemaMismatch, StoreUnavailable
from gateway.posture import allowlists, probereport, report
from gateway.posture.assessment import Assessment, Posture
from gateway.posture.probe import ProbeOptions
from gateway.posture.probeverdict import DomainProbe, host_facts, probe_domain
from gateway.runtime.parts import hostname, load_allowlist, open_posture, open_store
from gateway.store.probes import ProbeRecord

# Domains assessed (and probed) at once by `allowlist check`; each probes its MX hosts at once.
CONCURRENCY = 8

ALLOWLIST_CHECK_EPILOG = """\
exit status: 0 every exact entry is secure now; 1 some entry is not (expired, or its domain's
transport no longer proven secure, or with --live an MX host failing the domain's own policy);
2 a usage or configuration error. Wildcard entries (*.domain) cannot be checked or probed as a
whole: each subdomain is checked when mail is sent to it."""


def add_allowlist_check(actions: Any, common: argparse.ArgumentParser) -> None:
    """`gateway allowlist check [--live] [--json]`, beside `allowlist lint`."""
    parser = actions.add_parser(
        "check",
        parents=[common],
        help="check every allowlist entry's domain now; --live also dials its MX hosts",
        epilog=ALLOWLIST_CHECK_EPILOG,
    )
    parser.add_argument(
        "--live", action="store_true", help="also probe each MX host (STARTTLS, certificate)"
    )
    parser.add_argument("--json", action="store_true", help="print the stable JSON form")
    parser.set_defaults(run=run_allowlist_check)


def probe_options(settings: Settings) -> ProbeOptions:
    delivery = settings.delivery
    ca_file = settings.path(delivery.ca_file) if delivery.ca_file else None
    return ProbeOptions(
        port=delivery.mx_port,
        timeout=delivery.timeout,
        webpki=webpki_context(ca_file),
        helo=hostname(settings),
        allow_private_addresses=delivery.allow_private_addresses,
    )


@dataclass(frozen=True)
class Checked:
    assessment: Assessment
    probe: DomainProbe | None

    @property
    def secure(self) -> bool:
        if self.probe is not None:
            return self.probe.secure
        return self.assessment.verdict.secure


async def _check(
    posture: Posture, domain: str, options: ProbeOptions | None, limit: asyncio.Semaphore
) -> Checked:
    async with limit:
        assessment = await posture.assess(domain)
        if options is None:
            return Checked(assessment, None)
        resolver = posture.checker.resolver
        return Checked(assessment, await probe_domain(assessment, resolver, options))


def _check_all(
    settings: Settings, loaded: allowlists.Loaded, domains: Sequence[str], live: bool
) -> list[Checked]:
    options = probe_options(settings) if live else None

    async def run() -> list[Checked]:
        limit = asyncio.Semaphore(CONCURRENCY)
        async with open_posture(settings, loaded.allowlist, memo=False) as posture:
            work = (_check(posture, domain, options, limit) for domain in domains)
            return list(await asyncio.gather(*work))

    return asyncio.run(run())


def _record(settings: Settings, checked: Sequence[Checked]) -> None:
    """Keep each probe as its domain's last; a store that cannot be opened costs a warning."""
    found = [
        ProbeRecord(p.domain, p.at, p.secure, p.summary, tuple(host_facts(h) for h in p.hosts))
        for p in (c.probe for c in checked)
        if p is not None
    ]
    if not found:
        return

    async def write() -> None:
        store = await open_store(settings)
        try:
            await store.record_probes(found)
        finally:
            await store.close()

    try:
        asyncio.run(write())
    except (OSError, ConfigError, StoreUnavailable, SchemaMismatch) as exc:
        print(f"gateway: the probe results were not recorded: {exc}", file=sys.stderr)


def _loaded(settings: Settings) -> allowlists.Loaded:
    loaded = load_allowlist(settings)
    log = logs.get("gateway.check")
    for problem in loaded.problems:
        log.warning("allowlist problem", problem=str(problem))
    return loaded


# --- gateway check DOMAIN --probe ---------------------------------------------------------------


def run_check_probe(args: argparse.Namespace, settings: Settings, domains: list[str]) -> int:
    checked = _check_all(settings, _loaded(settings), domains, live=True)
    _record(settings, checked)
    if args.json:
        document = report.to_json([c.assessment for c in checked])
        for entry, c in zip(document["domains"], checked, strict=True):
            assert c.probe is not None
            entry["probe"] = probereport.probe_json(c.probe)
        print(json.dumps(document, indent=2))
    else:
        for index, c in enumerate(checked):
            assert c.probe is not None
            gap = "\n" if index else ""
            text = report.to_text([c.assessment]) + probereport.probe_text(c.probe)
            print(gap + text, end="")
    return EXIT_OK if all(c.secure for c in checked) else EXIT_FINDING


# --- gateway allowlist check [--live] -------------------------------------------------------------


def run_allowlist_check(args: argparse.Namespace, settings: Settings) -> int:
    loaded = _loaded(settings)
    entries = sorted(loaded.allowlist.entries, key=lambda e: (e.domain, e.wildcard))
    exact = [e for e in entries if not e.wildcard]
    domains = list(dict.fromkeys(e.domain for e in exact))
    by_domain = {}
    if domains:
        checked = _check_all(settings, loaded, domains, args.live)
        _record(settings, checked)
        by_domain = {c.assessment.facts.domain: c for c in checked}
    rows = [(e, by_domain.get(e.domain) if not e.wildcard else None) for e in entries]
    if args.json:
        print(json.dumps(_allowlist_json(rows, args.live), indent=2))
    else:
        print(_allowlist_text(rows, args.live), end="")
    failing = [c for e, c in rows if c is not None and not c.secure]
    # Paths that find no file leave the list short: a finding, like an entry that is not secure.
    return EXIT_FINDING if failing or loaded.unmatched else EXIT_OK


def _why(c: Checked) -> str:
    verdict = c.assessment.verdict
    if not verdict.secure:
        return ", ".join(r.value for r in verdict.reasons) or verdict.verdict.value
    return c.probe.summary if c.probe is not None else ""


def _probe_column(probe: DomainProbe | None) -> str:
    """What the MX hosts did, apart from the DNS posture (the column before)."""
    met = {host.meets for host in probe.hosts} if probe is not None else set()
    if False in met:
        return "FAILS"
    return "met" if True in met else "-"


def _allowlist_text(rows: Sequence[tuple[AllowlistEntry, Checked | None]], live: bool) -> str:
    bad = [(e, c) for e, c in rows if c is not None and not c.secure]
    wildcards = [e for e, c in rows if e.wildcard]
    width = max([len(e.name) for e, _ in bad] + [5])
    lines = []
    if bad:
        lines.append(f"{'ENTRY':<{width}}  {'DNS POSTURE':<12}  {'MX PROBE':<8}  WHY")
    for e, c in bad:
        assert c is not None
        verdict = c.assessment.verdict.verdict.value
        probed = _probe_column(c.probe)
        lines.append(f"{e.name:<{width}}  {verdict:<12}  {probed:<8}  {_why(c)}")
        lines.append(f"{'':<{width}}  from {e.file}:{e.line}")
    for e in wildcards:
        lines.append(
            f"{e.name}: a wildcard, not checked{' or probed' if live else ''}: "
            f"each subdomain of {e.domain} is checked when mail is sent to it"
        )
    checked = len(rows) - len(wildcards)
    how = "checked against DNS and probed" if live else "checked against DNS"
    lines.append(
        f"{checked} exact entr{'y' if checked == 1 else 'ies'} {how}: "
        f"{checked - len(bad)} secure, {len(bad)} not secure"
        + (f"; {len(wildcards)} wildcard(s) not checked" if wildcards else "")
    )
    return "\n".join(lines) + "\n"


def _allowlist_json(
    rows: Sequence[tuple[AllowlistEntry, Checked | None]], live: bool
) -> dict[str, Any]:
    entries = []
    for e, c in rows:
        item: dict[str, Any] = {
            "entry": e.name,
            "file": e.file,
            "line": e.line,
            "wildcard": e.wildcard,
            "checked": c is not None,
            "secure": c.secure if c is not None else None,
            "why": _why(c) if c is not None else "a wildcard: checked per recipient domain",
        }
        if c is not None:
            item["posture"] = report.assessment_json(c.assessment)
            item["probe"] = probereport.probe_json(c.probe) if c.probe else None
        entries.append(item)
    return {"version": report.JSON_VERSION, "live": live, "entries": entries}
