"""Starting and stopping the whole rig, and writing gateway configs that point at it."""

import contextlib
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from rig import allowlist, binaries, dnszone, tomlwrite
from rig.knot import Knot
from rig.nginx import Nginx
from rig.pki import Leaf, RigCA
from rig.ports import LOOPBACK, free_port
from rig.unbound import Unbound
from rig.zones import CA, SELF_SIGNED, ZONES, Domain, Tlsa

# The certificate nginx presents for names that have no server block of their own.
DEFAULT_CERT_NAME = "default.rig.test"


@dataclass
class Rig:
    """The running servers, and what a gateway config or a test needs to know about them."""

    workdir: Path
    zones: tuple[Domain, ...]
    ca: RigCA
    certs: dict[str, Leaf] = field(default_factory=dict)
    knot: Knot | None = None
    unbound: Unbound | None = None
    nginx: Nginx | None = None
    allowlist_file: Path | None = None
    start_seconds: float = 0.0

    @property
    def ca_file(self) -> Path:
        return self.ca.ca_file

    @property
    def dns_port(self) -> int:
        assert self.unbound is not None
        return self.unbound.port

    @property
    def knot_port(self) -> int:
        assert self.knot is not None
        return self.knot.port

    @property
    def https_port(self) -> int:
        assert self.nginx is not None
        return self.nginx.port

    def domain(self, name: str) -> Domain:
        for row in self.zones:
            if row.name == name:
                return row
        raise KeyError(name)

    def policy_cert(self, row: Domain) -> Leaf:
        """The certificate nginx presents for mta-sts.<row.name>."""
        assert row.policy is not None
        return self.certs[(row.policy.cert_names or (row.mta_sts_host,))[0]]

    def tlsa_data(self, tlsa: Tlsa) -> str:
        """The association data of `tlsa`, digested from the rig certificate it names."""
        if tlsa.cert == CA:
            return self.ca.tlsa_data(tlsa.selector, tlsa.mtype)
        return self.certs[tlsa.cert].tlsa_data(tlsa.selector, tlsa.mtype)

    def config(self, **overrides: Mapping[str, object]) -> dict[str, dict[str, object]]:
        """The gateway config as tables; each keyword updates (or adds) one table."""
        doc: dict[str, dict[str, object]] = {
            "dns": {
                "nameservers": [f"{LOOPBACK}:{self.dns_port}"],
                "timeout": 2.0,
                "trust_ad": True,
            },
            "mta_sts": {
                "https_port": self.https_port,
                "ca_file": self.ca_file,
                "allow_private_addresses": True,
            },
            "allowlist": {"paths": [self.allowlist_file]},
            "policy": {"minimum_transport": "mta-sts-enforce", "require_tls_rpt": False},
            "store": {},
            # Off unless a test asks: several gateways run at once and would race for :8025.
            "web": {"enabled": False},
        }
        for section, table in overrides.items():
            doc.setdefault(section, {}).update(table)
        if "data_dir" not in doc["store"]:
            # A fresh store per config, so no test sees a policy cached by another.
            data_root = self.workdir / "data"
            data_root.mkdir(exist_ok=True)
            doc["store"]["data_dir"] = tempfile.mkdtemp(prefix="store-", dir=data_root)
        return doc

    def write_config(self, path: Path | str, **overrides: Mapping[str, object]) -> Path:
        """Write a gateway TOML config for this rig; e.g. `policy={"require_tls_rpt": True}`.

        A key set to None in an override is left out of the file.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(tomlwrite.tables(self.config(**overrides)))
        return path

    def logs(self) -> str:
        servers = [s for s in (self.knot, self.unbound, self.nginx) if s is not None]
        return "\n".join(s.process.logs() for s in servers)

    def stop(self) -> None:
        for server in (self.nginx, self.unbound, self.knot):
            if server is not None:
                server.stop()


def _issue_certs(rig: Rig) -> None:
    wanted: list[tuple[str, ...]] = [(DEFAULT_CERT_NAME,)]
    for row in rig.zones:
        if row.policy is not None:
            wanted.append(row.policy.cert_names or (row.mta_sts_host,))
        wanted += [(t.cert,) for t in row.tlsa if t.cert != CA]
    for names in dict.fromkeys(wanted):
        if names[0].startswith(SELF_SIGNED):
            rig.certs[names[0]] = rig.ca.self_signed((names[0].removeprefix(SELF_SIGNED),))
        else:
            rig.certs[names[0]] = rig.ca.issue(names)


def start_rig(workdir: Path, rows: Iterable[Domain] = ZONES) -> Rig:
    """Start knotd, unbound and nginx for `rows` under `workdir`; stop them with `Rig.stop`."""
    began = time.monotonic()
    for name in binaries.PACKAGES:
        binaries.require(name)
    workdir.mkdir(parents=True, exist_ok=True)
    rig = Rig(workdir=workdir, zones=tuple(rows), ca=RigCA(workdir / "pki"))
    try:
        _issue_certs(rig)
        zones = dnszone.render_zones(rig.zones, rig.tlsa_data)
        rig.knot = Knot(workdir / "knot", free_port(), zones)
        rig.knot.start()
        root = dnszone.ROOT_ZONE
        anchors = [f"{root} DNSKEY {key}" for key in rig.knot.ksk_dnskeys(root)]
        rig.unbound = Unbound(
            workdir / "unbound", free_port(), rig.knot.port, stub_zones=zones, trust_anchors=anchors
        )
        rig.unbound.start(probe_name=root)
        rig.nginx = Nginx(
            workdir / "nginx",
            free_port(),
            rig.zones,
            cert_for=rig.policy_cert,
            default_cert=rig.certs[DEFAULT_CERT_NAME],
            ca_file=rig.ca_file,
        )
        rig.nginx.start()
        rig.allowlist_file = allowlist.write(workdir / "allowlist.toml", rig.zones)
    except BaseException:
        rig.stop()
        raise
    rig.start_seconds = time.monotonic() - began
    return rig


@contextlib.contextmanager
def running_rig(workdir: Path, rows: Iterable[Domain] = ZONES) -> Iterator[Rig]:
    rig = start_rig(workdir, rows)
    try:
        yield rig
    finally:
        rig.stop()
