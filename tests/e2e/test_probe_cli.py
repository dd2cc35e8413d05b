"""`gateway check --probe` and `gateway allowlist check [--live]` end to end: the real CLI,
the rig's signed zones and MTA-STS policies, and a real MX server with STARTTLS behind them.

The rig's MX host names all resolve to 127.0.0.1, so each test's MX server listens there on a
port of its own (``[delivery] mx_port``): the domains' MX hosts are that one server.
"""

from __future__ import annotations

import json
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rig import Rig
from rig.cli import GatewayRunner
from rig.pki import Leaf
from rig.ports import free_port
from rig.upstream import Upstream

pytestmark = pytest.mark.e2e

EXIT_SECURE, EXIT_NOT_SECURE = 0, 1
SECURE_HOSTS = ("mx1.secure.test", "mx2.secure.test")


def explain(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"


def context(leaf: Leaf) -> ssl.SSLContext:
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(leaf.cert_file, leaf.key_file)
    return server


class Setup:
    def __init__(self, rig: Rig, tmp_path: Path) -> None:
        self.rig = rig
        self.tmp_path = tmp_path
        self.port = free_port()
        self.servers: list[Upstream] = []
        self.data_dir = tmp_path / "data"

    def mx(self, leaf: Leaf | None = None, **behaviour: object) -> Upstream:
        """The MX server every MX host of the rig's domains reaches in this test."""
        tls = context(leaf or self.rig.ca.issue(SECURE_HOSTS, stem="probe-secure"))
        server = Upstream(port=self.port, tls=tls, name=SECURE_HOSTS[0])
        for name, value in behaviour.items():
            setattr(server, name, value)
        self.servers.append(server.start())
        return server

    def config(self, allowlist: list[str] | None = None, private: bool = True) -> Path:
        overrides: dict[str, dict[str, object]] = {
            "delivery": {
                "mx_port": self.port,
                "ca_file": self.rig.ca_file,
                "allow_private_addresses": private,
                "timeout": "10s",
            },
            "store": {"data_dir": self.data_dir},
        }
        if allowlist is not None:
            path = self.tmp_path / "allowlist.txt"
            path.write_text("".join(f"{name}\n" for name in allowlist))
            overrides["allowlist"] = {"paths": [path]}
        return self.rig.write_config(self.tmp_path / "gateway.toml", **overrides)


@pytest.fixture
def setup(rig: Rig, tmp_path: Path) -> Iterator[Setup]:
    made = Setup(rig, tmp_path)
    try:
        yield made
    finally:
        for server in made.servers:
            server.close()


def probe_json(gateway: GatewayRunner, config: Path, *domains: str) -> tuple[int, dict[str, Any]]:
    result = gateway("check", "--config", config, "--probe", "--json", *domains)
    try:
        document = json.loads(result.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"`check --probe --json` printed no JSON\n{explain(result)}")
    return result.returncode, {d["domain"]: d for d in document["domains"]}


def test_good_starttls_and_webpki(gateway: GatewayRunner, setup: Setup) -> None:
    server = setup.mx(requiretls=True)
    result = gateway("check", "--config", setup.config(), "--probe", "secure.test")
    assert result.returncode == EXIT_SECURE, explain(result)
    out = result.stdout
    assert "probe      SECURE: 2 of 2 MX host(s) met the domain's policy" in out, out
    for host in SECURE_HOSTS:
        assert f"{host} [127.0.0.1]:{setup.port} (MTA-STS enforce)" in out, out
        assert f"verified for {host}" in out, out
    for words in (
        "TLSv1.3",
        "mx1.secure.test, mx2.secure.test",
        "days left",
        "issued by Safeguarding Gateway Test Root",
        "advertised after STARTTLS",
    ):
        assert words in out, out
    assert "Traceback" not in result.stderr, explain(result)
    # Each host is left politely.
    assert server.transcript.count("QUIT") >= 2, server.transcript


@pytest.mark.parametrize(
    ("name", "behaviour", "phrase"),
    [
        ("no-starttls", {"offer_starttls": False}, "no STARTTLS offered"),
        ("wrong-name", {"cert": ("mx.other.test",)}, "names mx.other.test, not mx1.secure.test"),
        ("expired", {"cert": SECURE_HOSTS, "expired": True}, "certificate has expired"),
    ],
)
def test_a_host_failing_the_policy_makes_the_domain_not_secure(
    gateway: GatewayRunner, setup: Setup, name: str, behaviour: dict[str, Any], phrase: str
) -> None:
    names = behaviour.pop("cert", None)
    expired = behaviour.pop("expired", False)
    leaf = setup.rig.ca.issue(names, stem=f"probe-{name}", expired=expired) if names else None
    setup.mx(leaf, **behaviour)
    status, report = probe_json(gateway, setup.config(), "secure.test")
    entry = report["secure.test"]
    assert status == EXIT_NOT_SECURE, entry
    assert entry["verdict"] == "secure", "the DNS posture alone is secure"
    probe = entry["probe"]
    assert probe["secure"] is False
    assert phrase in probe["summary"], probe
    assert [h["meets_policy"] for h in probe["hosts"]] == [False, False], probe


def test_expired_certificate_shows_its_expiry(gateway: GatewayRunner, setup: Setup) -> None:
    setup.mx(setup.rig.ca.issue(SECURE_HOSTS, stem="probe-expired-text", expired=True))
    result = gateway("check", "--config", setup.config(), "--probe", "secure.test")
    assert result.returncode == EXIT_NOT_SECURE, explain(result)
    assert "probe      NOT SECURE: mx1.secure.test: certificate does not verify" in result.stdout
    assert "expires      EXPIRED " in result.stdout, result.stdout
    assert "FAILS" in result.stdout


def test_dane_match_and_mismatch(gateway: GatewayRunner, setup: Setup) -> None:
    # dane.test publishes TLSA 3 1 1 for the rig's certificate of mx.dane.test.
    setup.mx(setup.rig.certs["mx.dane.test"])
    status, report = probe_json(gateway, setup.config(), "dane.test")
    host = report["dane.test"]["probe"]["hosts"][0]
    assert status == EXIT_SECURE, report
    assert (host["requirement"], host["dane"]["matched"], host["meets_policy"]) == (
        "dane",
        "dane-ee",
        True,
    )

    setup.servers.pop().close()
    setup.mx(setup.rig.ca.self_signed(("mx.dane.test",), stem="probe-dane-other"))
    status, report = probe_json(gateway, setup.config(), "dane.test")
    probe = report["dane.test"]["probe"]
    assert status == EXIT_NOT_SECURE, probe
    assert probe["hosts"][0]["dane"]["matched"] == "none"
    assert "matches none of its 1 usable TLSA record(s)" in probe["summary"]


def test_host_down(gateway: GatewayRunner, setup: Setup) -> None:
    result = gateway("check", "--config", setup.config(), "--probe", "secure.test")
    assert result.returncode == EXIT_NOT_SECURE, explain(result)
    assert "no MX host could be reached" in result.stdout
    assert "not reachable: 127.0.0.1: connection refused" in result.stdout
    assert "Traceback" not in result.stderr, explain(result)


def test_private_addresses_are_refused_by_default(gateway: GatewayRunner, setup: Setup) -> None:
    server = setup.mx()
    result = gateway("check", "--config", setup.config(private=False), "--probe", "secure.test")
    assert result.returncode == EXIT_NOT_SECURE, explain(result)
    assert "127.0.0.1 not dialled" in result.stdout, result.stdout
    assert server.connections == 0


def test_allowlist_check_without_live_uses_dns(gateway: GatewayRunner, setup: Setup) -> None:
    config = setup.config(["secure.test", "nosts.test", "*.wildcard.test"])
    result = gateway("allowlist", "check", "--config", config)
    assert result.returncode == EXIT_NOT_SECURE, explain(result)
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["ENTRY", "DNS", "POSTURE", "MX", "PROBE", "WHY"], result.stdout
    assert lines[1].split() == ["nosts.test", "not-secure", "-", "sts-no-record"], result.stdout
    assert not any(line.startswith("secure.test") for line in lines), result.stdout
    assert "*.wildcard.test: a wildcard, not checked" in result.stdout
    assert lines[-1] == (
        "2 exact entries checked against DNS: 1 secure, 1 not secure; 1 wildcard(s) not checked"
    )


def test_allowlist_check_live_finds_a_downgraded_mx(gateway: GatewayRunner, setup: Setup) -> None:
    setup.mx(offer_starttls=False)
    config = setup.config(["secure.test"])
    assert gateway("allowlist", "check", "--config", config).returncode == EXIT_SECURE

    result = gateway("allowlist", "check", "--live", "--config", config)
    assert result.returncode == EXIT_NOT_SECURE, explain(result)
    row = result.stdout.splitlines()[1]
    assert row.startswith("secure.test  secure        FAILS     mx1.secure.test: no STARTTLS")

    document = json.loads(
        gateway("allowlist", "check", "--live", "--json", "--config", config).stdout
    )
    (entry,) = document["entries"]
    assert (entry["entry"], entry["secure"], entry["probe"]["secure"]) == (
        "secure.test",
        False,
        False,
    )


def test_allowlist_check_help_names_its_exit_status(gateway: GatewayRunner) -> None:
    result = gateway("allowlist", "check", "--help")
    assert result.returncode == 0
    assert "exit status: 0 every exact entry is secure now; 1 some entry is not" in result.stdout
