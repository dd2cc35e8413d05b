"""Zone files for knotd, rendered from the zone spec.

Everything lives in the one signed zone ``test.`` except rows marked `dnssec_bogus`, which get a
child zone of their own plus a delegation and a DS in ``test.`` that matches none of their keys.
"""

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from rig.zones import Domain, Tlsa

ROOT_ZONE = "test."
ADDRESS = "127.0.0.1"
TTL = 300
# ECDSAP256SHA256, the algorithm of the rig's signing policy, so the validator does try the DS.
_DS_ALGORITHM = 13


@dataclass(frozen=True)
class Record:
    owner: str
    rtype: str
    rdata: str

    def line(self) -> str:
        return f"{_fqdn(self.owner)} {TTL} IN {self.rtype} {self.rdata}"


def _fqdn(name: str) -> str:
    return name if name.endswith(".") else name + "."


def txt_rdata(strings: Iterable[str]) -> str:
    """TXT rdata in zone-file syntax: each character-string quoted and escaped."""
    quoted = []
    for s in strings:
        escaped = s.replace("\\", "\\\\").replace('"', '\\"')
        quoted.append(f'"{escaped}"')
    return " ".join(quoted)


def domain_records(row: Domain, tlsa_data: Callable[[Tlsa], str]) -> list[Record]:
    """The records that set `row` up, all under its own name."""
    records = [Record(row.mta_sts_host, "A", ADDRESS)]
    for preference, host in row.mx:
        records.append(Record(row.name, "MX", f"{preference} {_fqdn(host)}"))
        if host != ".":
            records.append(Record(host, "A", row.address(host)))
    records += [Record(f"_mta-sts.{row.name}", "TXT", txt_rdata(s)) for s in row.sts]
    if row.tlsrpt is not None:
        records.append(Record(f"_smtp._tls.{row.name}", "TXT", txt_rdata([row.tlsrpt])))
    for tlsa in row.tlsa:
        rdata = f"{tlsa.usage} {tlsa.selector} {tlsa.mtype} {tlsa_data(tlsa)}"
        records.append(Record(tlsa.owner, "TLSA", rdata))
    # Distinct and stable, so a row may name the same host twice without a duplicate RR.
    return sorted(set(records), key=lambda r: (r.owner, r.rtype, r.rdata))


def _apex(origin: str) -> list[Record]:
    ns = f"ns.{origin}"
    return [
        Record(origin, "SOA", f"{ns} hostmaster.{origin} 1 3600 600 86400 {TTL}"),
        Record(origin, "NS", ns),
        Record(ns, "A", ADDRESS),
    ]


def _render(records: list[Record]) -> str:
    return "\n".join(r.line() for r in records) + "\n"


def bogus_ds(origin: str) -> str:
    """DS rdata that looks right but digests no key at all, so validation of `origin` fails."""
    digest = hashlib.sha256(f"no such key for {origin}".encode()).hexdigest()
    return f"12345 {_DS_ALGORITHM} 2 {digest}"


def render_zones(rows: Iterable[Domain], tlsa_data: Callable[[Tlsa], str]) -> dict[str, str]:
    """Zone origin -> zone file text, the root zone ``test.`` first."""
    parent = _apex(ROOT_ZONE)
    children: dict[str, str] = {}
    for row in rows:
        records = domain_records(row, tlsa_data)
        if not row.dnssec_bogus:
            parent += records
            continue
        origin = _fqdn(row.name)
        child_ns = f"ns.{origin}"
        parent += [
            Record(origin, "NS", child_ns),
            Record(child_ns, "A", ADDRESS),
            Record(origin, "DS", bogus_ds(origin)),
        ]
        children[origin] = _render(_apex(origin) + records)
    return {ROOT_ZONE: _render(parent), **children}
