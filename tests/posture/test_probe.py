"""The active probe against real SMTP servers on their own loopback addresses (127.0.0.x),
each presenting a certificate from the rig's test CA, or a self-signed one for DANE-EE: what
the probe reports of each, and whether the host meets the domain's policy."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gateway.core.model import StsMode, StsPolicy, TlsaRecord
from gateway.delivery.peer import webpki_context
from gateway.posture.probe import ProbeOptions, probe
from gateway.posture.probeverdict import judge
from rig.pki import Leaf, RigCA
from rig.ports import free_port
from rig.upstream import Upstream

DOMAIN = "probe-partner.test"
ENFORCE = StsPolicy(StsMode.ENFORCE, 86400, (f"*.{DOMAIN}",))


class Certs:
    def __init__(self, directory: Path) -> None:
        self.ca = RigCA(directory)
        self.directory = directory

    def leaf(self, kind: str, host: str) -> Leaf:
        if kind == "self-signed":
            return self.ca.self_signed((host,), stem=f"self-{host}")
        if kind == "expired":
            return self.ca.issue((host,), stem=f"expired-{host}", expired=True)
        if kind == "other-name":
            return self.ca.issue(("mx.elsewhere.test",), stem=f"other-{host}")
        return self.ca.issue((host,), stem=f"good-{host}")

    def with_ca(self, leaf: Leaf) -> Path:
        """A chain file (leaf, then the root) for a server that presents its issuer too."""
        path = self.directory / f"{leaf.cert_file.stem}-chain.pem"
        path.write_bytes(leaf.cert_file.read_bytes() + self.ca.ca_file.read_bytes())
        return path


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return Certs(tmp_path_factory.mktemp("probe-pki"))


@pytest.fixture(scope="module")
def port() -> int:
    return free_port()


def ee(leaf: Leaf) -> TlsaRecord:
    return TlsaRecord(3, 1, 1, bytes.fromhex(leaf.tlsa_data(1, 1)))


@dataclass(frozen=True)
class Case:
    name: str
    cert: str = "good"  # good, self-signed, expired, other-name
    tlsa: Callable[[Certs, Leaf], list[TlsaRecord]] = lambda c, leaf: []
    policy: StsPolicy | None = ENFORCE
    chain_with_ca: bool = False
    upstream: dict[str, object] = field(default_factory=dict)
    tls_max: ssl.TLSVersion | None = None
    down: bool = False
    meets: bool | None = True
    why: str = ""  # words the judgement must contain
    expect: dict[str, object] = field(default_factory=dict)  # HostProbe attributes


CASES = [
    Case(
        "good-webpki",
        why="verifies",
        expect={"starttls": True, "tls_version": "TLSv1.3", "webpki": True, "requiretls": False},
    ),
    Case("requiretls", upstream={"requiretls": True}, expect={"requiretls": True}),
    Case(
        "no-starttls",
        upstream={"offer_starttls": False},
        meets=False,
        why="no STARTTLS offered",
        expect={"starttls": False, "tls_version": "", "requiretls": None},
    ),
    Case(
        "starttls-refused",
        upstream={"fail_starttls": 454},
        meets=False,
        why="STARTTLS refused: 454",
        expect={"starttls": True, "tls_version": ""},
    ),
    Case(
        "wrong-name",
        cert="other-name",
        meets=False,
        why="does not verify: it names mx.elsewhere.test, not mx-wrong-name.probe-partner.test",
        expect={"webpki": False, "tls_version": "TLSv1.3"},
    ),
    Case("expired", cert="expired", meets=False, why="certificate has expired"),
    Case(
        "not-in-policy",
        policy=StsPolicy(StsMode.ENFORCE, 86400, ("mx.elsewhere.test",)),
        meets=False,
        why="not named by the MTA-STS policy",
        expect={"in_policy": False, "webpki": True},
    ),
    Case(
        "dane-ee-self-signed",
        cert="self-signed",
        tlsa=lambda c, leaf: [ee(leaf)],
        why="dane-ee",
        expect={"webpki": False, "requirement": "dane"},
    ),
    Case(
        "dane-ta",
        tlsa=lambda c, leaf: [TlsaRecord(2, 0, 1, bytes.fromhex(c.ca.tlsa_data(0, 1)))],
        chain_with_ca=True,
        why="dane-ta",
        expect={"chain_length": 2},
    ),
    Case(
        "dane-mismatch",
        cert="self-signed",
        tlsa=lambda c, leaf: [ee(c.leaf("self-signed", "someone.else.test"))],
        meets=False,
        why="matches none of its 1 usable TLSA",
    ),
    Case(
        "dane-no-starttls",
        cert="self-signed",
        tlsa=lambda c, leaf: [ee(leaf)],
        upstream={"offer_starttls": False},
        meets=False,
        why="no STARTTLS offered, which the DANE policy",
    ),
    Case(
        "no-policy-plaintext",
        policy=None,
        upstream={"offer_starttls": False},
        meets=None,
        why="no DANE or MTA-STS enforce policy applies; no TLS",
    ),
    Case("down", down=True, meets=None, why="connection refused", expect={"reachable": False}),
]


def server_context(certs: Certs, case: Case, leaf: Leaf) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    chain = certs.with_ca(leaf) if case.chain_with_ca else leaf.cert_file
    context.load_cert_chain(chain, leaf.key_file)
    return context


def probe_options(certs: Certs, port: int, **changes: object) -> ProbeOptions:
    options = {"timeout": 5.0, "allow_private_addresses": True, **changes}
    return ProbeOptions(port=port, webpki=webpki_context(certs.ca.ca_file), **options)  # type: ignore[arg-type]


@contextlib.contextmanager
def mx_server(certs: Certs, port: int, case: Case, address: str) -> Iterator[Leaf]:
    """An MX host on its own loopback address, as each MX host of a domain has its own."""
    host = f"mx-{case.name}.{DOMAIN}"
    leaf = certs.leaf(case.cert, host)
    server = Upstream(port=port, host=address, tls=server_context(certs, case, leaf), name=host)
    for name, value in case.upstream.items():
        setattr(server, name, value)
    try:
        if not case.down:
            server.start()
        yield leaf
    finally:
        server.close()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_probe_reports_and_judges(certs: Certs, port: int, case: Case) -> None:
    address = f"127.0.0.{20 + CASES.index(case)}"
    host = f"mx-{case.name}.{DOMAIN}"
    with mx_server(certs, port, case, address) as leaf:
        result = await probe(
            host, [address], case.tlsa(certs, leaf), case.policy, probe_options(certs, port)
        )
    judged = judge(result)
    assert judged.meets is case.meets, judged
    assert case.why in judged.why, judged
    for name, value in case.expect.items():
        assert getattr(result, name) == value, (name, result)
    if result.reachable:
        assert result.address == address


async def test_private_addresses_are_not_dialled_unless_allowed(certs: Certs, port: int) -> None:
    case = Case("private")
    with mx_server(certs, port, case, "127.0.0.60"):
        options = probe_options(certs, port, allow_private_addresses=False)
        result = await probe(f"mx-private.{DOMAIN}", ["127.0.0.60"], [], ENFORCE, options)
    assert not result.reachable
    assert result.error == "no address may be dialled"
    assert "127.0.0.60 not dialled" in result.skipped[0]
    assert "allow_private_addresses" in result.skipped[0]


async def test_the_next_address_is_tried_when_one_does_not_answer(certs: Certs, port: int) -> None:
    case = Case("second")
    with mx_server(certs, port, case, "127.0.0.62"):
        host = f"mx-second.{DOMAIN}"
        result = await probe(
            host, ["127.0.0.61", "127.0.0.62"], [], ENFORCE, probe_options(certs, port)
        )
    assert result.address == "127.0.0.62"
    assert result.skipped == ("127.0.0.61: connection refused",)
    assert judge(result).meets is True
