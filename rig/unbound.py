"""unbound: the validating resolver the gateway talks to, trusting only the rig's test. keys."""

from collections.abc import Iterable
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.query

from rig.binaries import require
from rig.ports import LOOPBACK
from rig.process import ServerProcess

_SERVER = """\
server:
    interface: {address}
    port: {port}
    do-ip6: no
    do-daemonize: no
    chroot: ""
    username: ""
    directory: "{dir}"
    pidfile: "{dir}/unbound.pid"
    logfile: "{log}"
    use-syslog: no
    log-time-ascii: yes
    # Verbosity 3 logs every upstream target, which the smoke test reads to prove that unbound
    # only ever sends to loopback; val-log-level 2 says why a validation failed.
    verbosity: 3
    val-log-level: 2
    log-servfail: yes
    num-threads: 1
    module-config: "validator iterator"
    # knotd is on loopback, which unbound refuses to query unless told otherwise.
    do-not-query-localhost: no
    # Guards against any traffic off this machine: queries leave from loopback only, and every
    # name outside test. is refused before recursion. "test." is a special-use zone that
    # unbound would answer itself (NXDOMAIN); transparent lets the stub zone below answer.
    outgoing-interface: {address}
    local-zone: "." refuse
    local-zone: "test." transparent
    # The only trust anchors: no root key, so nothing is ever fetched or updated for it.
{anchors}
"""

_STUB = """\
stub-zone:
    name: "{name}"
    stub-addr: {address}@{port}
"""

_TAIL = """\
remote-control:
    control-enable: no
"""


class Unbound:
    """unbound on 127.0.0.1:`port`, resolving `stub_zones` at knotd on `knot_port`."""

    def __init__(
        self,
        workdir: Path,
        port: int,
        knot_port: int,
        stub_zones: Iterable[str],
        trust_anchors: Iterable[str],
    ) -> None:
        self.workdir = workdir
        self.port = port
        self.knot_port = knot_port
        # "." too: should any lookup ever escape the local-zone guard, it goes to knotd, which
        # refuses it at once, instead of to the root servers.
        self.stub_zones = [*stub_zones, "."]
        self.trust_anchors = list(trust_anchors)
        self.log = workdir / "unbound.log"
        self.conf = workdir / "unbound.conf"
        self.process = ServerProcess(
            "unbound",
            [require("unbound"), "-d", "-c", self.conf],
            workdir,
            extra_logs=[self.log],
        )

    def _write(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        anchors = "\n".join(f'    trust-anchor: "{a}"' for a in self.trust_anchors)
        parts = [
            _SERVER.format(
                address=LOOPBACK, port=self.port, dir=self.workdir, log=self.log, anchors=anchors
            )
        ]
        parts += [
            _STUB.format(name=zone, address=LOOPBACK, port=self.knot_port)
            for zone in self.stub_zones
        ]
        parts.append(_TAIL)
        self.conf.write_text("\n".join(parts))

    def query(self, name: str, rdtype: str, timeout: float = 1.0) -> dns.message.Message:
        """A query as a validating stub sends it: AD set, so unbound reports validation."""
        q = dns.message.make_query(name, rdtype)
        q.flags |= dns.flags.AD
        return dns.query.udp(q, LOOPBACK, port=self.port, timeout=timeout)

    def _validates(self, name: str) -> bool:
        try:
            answer = self.query(name, "SOA", timeout=0.5)
        except (OSError, dns.exception.Timeout):
            return False
        return bool(answer.flags & dns.flags.AD)

    def start(self, probe_name: str, timeout: float = 10.0) -> None:
        self._write()
        self.process.start()
        self.process.wait_ready(
            lambda: self._validates(probe_name),
            timeout,
            f"{probe_name} SOA answered with the AD bit (DNSSEC validation)",
        )

    def stop(self) -> None:
        self.process.stop()
