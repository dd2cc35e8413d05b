"""knotd: the authoritative server, signing every zone itself with keys it generates."""

from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

from rig.binaries import require
from rig.errors import RigError
from rig.ports import LOOPBACK
from rig.process import ServerProcess

# DNSKEY flags of a key signing key (Zone Key + Secure Entry Point).
KSK_FLAGS = 257

_CONF = """\
server:
    rundir: "{run}"
    listen: {address}@{port}
    # One worker each: a handful of test queries, and a fast start.
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1

log:
  - target: "{log}"
    any: info

database:
    storage: "{db}"
    kasp-db: "{kasp}"

policy:
  - id: rig
    algorithm: ecdsap256sha256
    nsec3: off

template:
  - id: default
    storage: "{zones}"
    file: "%s.zone"
    dnssec-signing: on
    dnssec-policy: rig
    # The signed zone lives in memory only; the temp dir is thrown away anyway.
    zonefile-sync: -1
    journal-content: none

zone:
{zone_list}
"""


class Knot:
    """knotd serving `zones` (origin -> zone file text) on 127.0.0.1:`port`."""

    def __init__(self, workdir: Path, port: int, zones: dict[str, str]) -> None:
        self.workdir = workdir
        self.port = port
        self.zones = zones
        self.log = workdir / "knot.log"
        self.conf = workdir / "knot.conf"
        self.process = ServerProcess(
            "knotd",
            [require("knotd"), "--config", self.conf],
            workdir,
            extra_logs=[self.log],
        )

    def _write(self) -> None:
        dirs = {name: self.workdir / name for name in ("run", "db", "kasp", "zones")}
        for d in dirs.values():
            d.mkdir(parents=True, exist_ok=True)
        for origin, text in self.zones.items():
            (dirs["zones"] / f"{origin}zone").write_text(text)
        zone_list = "\n".join(f"  - domain: {origin}" for origin in self.zones)
        self.conf.write_text(
            _CONF.format(
                address=LOOPBACK,
                port=self.port,
                log=self.log,
                zone_list=zone_list,
                **{name: str(path) for name, path in dirs.items()},
            )
        )

    def query(self, name: str, rdtype: str, timeout: float = 0.5) -> dns.message.Message:
        q = dns.message.make_query(name, rdtype, want_dnssec=True)
        q.flags &= ~dns.flags.RD
        return dns.query.udp(q, LOOPBACK, port=self.port, timeout=timeout)

    def _signed(self, origin: str) -> bool:
        try:
            answer = self.query(origin, "DNSKEY")
        except (OSError, dns.exception.Timeout):
            return False
        types = {rrset.rdtype for rrset in answer.answer}
        return answer.rcode() == dns.rcode.NOERROR and dns.rdatatype.RRSIG in types

    def start(self, timeout: float = 10.0) -> None:
        self._write()
        self.process.start()
        for origin in self.zones:
            self.process.wait_ready(
                lambda o=origin: self._signed(o), timeout, f"zone {origin} served signed"
            )

    def ksk_dnskeys(self, origin: str) -> list[str]:
        """The zone's key signing keys as DNSKEY rdata text: what a trust anchor is made of."""
        answer = self.query(origin, "DNSKEY")
        keys = [
            rdata.to_text()
            for rrset in answer.answer
            if rrset.rdtype == dns.rdatatype.DNSKEY
            for rdata in rrset
            if rdata.flags == KSK_FLAGS
        ]
        if not keys:
            raise RigError(f"knotd serves no KSK for {origin}\n{self.process.logs()}")
        return keys

    def stop(self) -> None:
        self.process.stop()
