"""DANE matching of a presented chain (RFC 7672 §3) and certificate name matching, over
certificates made by the rig's test CA: which chains a TLSA RRset authenticates, and how."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.core.model import TlsaRecord
from gateway.delivery import peer
from gateway.delivery.transport import PeerAuth
from rig.pki import Leaf, RigCA

HOST = "mx1.partner.test"


class Certs:
    def __init__(self, directory: Path) -> None:
        self.ca = RigCA(directory)
        self.good = self.ca.issue((HOST,))
        self.other = self.ca.issue(("mx.other.test",))
        self.expired = self.ca.issue((HOST,), stem="expired", expired=True)
        self.wildcard = self.ca.issue(("*.partner.test",), stem="wildcard")
        self.self_signed = self.ca.self_signed((HOST,))
        self.stranger = RigCA(directory / "stranger", "Somebody Else")

    def chain(self, leaf: Leaf, with_ca: bool = True) -> tuple[bytes, ...]:
        return (leaf.cert_der, self.ca.cert_der) if with_ca else (leaf.cert_der,)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return Certs(tmp_path_factory.mktemp("peer-pki"))


def ee(leaf: Leaf, selector: int = 1, mtype: int = 1) -> TlsaRecord:
    return TlsaRecord(3, selector, mtype, bytes.fromhex(leaf.tlsa_data(selector, mtype)))


def ta(ca: RigCA, selector: int = 0, mtype: int = 1, usage: int = 2) -> TlsaRecord:
    return TlsaRecord(usage, selector, mtype, bytes.fromhex(ca.tlsa_data(selector, mtype)))


Case = Callable[[Certs], tuple[list[TlsaRecord], tuple[bytes, ...]]]
CASES: list[tuple[str, Case, PeerAuth | None]] = [
    (
        "ee-spki-sha256",
        lambda c: ([ee(c.self_signed)], c.chain(c.self_signed, False)),
        PeerAuth.DANE_EE,
    ),
    ("ee-cert-sha256", lambda c: ([ee(c.good, 0, 1)], c.chain(c.good)), PeerAuth.DANE_EE),
    ("ee-cert-sha512", lambda c: ([ee(c.good, 0, 2)], c.chain(c.good)), PeerAuth.DANE_EE),
    ("ee-full-spki", lambda c: ([ee(c.good, 1, 0)], c.chain(c.good)), PeerAuth.DANE_EE),
    # RFC 7672 §3.1.1: DANE-EE ignores names and dates.
    ("ee-other-name", lambda c: ([ee(c.other)], c.chain(c.other)), PeerAuth.DANE_EE),
    ("ee-expired", lambda c: ([ee(c.expired)], c.chain(c.expired)), PeerAuth.DANE_EE),
    ("ee-mismatch", lambda c: ([ee(c.other)], c.chain(c.good)), None),
    ("one-of-several", lambda c: ([ee(c.other), ee(c.good)], c.chain(c.good)), PeerAuth.DANE_EE),
    ("ta-cert", lambda c: ([ta(c.ca)], c.chain(c.good)), PeerAuth.DANE_TA),
    ("ta-spki", lambda c: ([ta(c.ca, 1, 1)], c.chain(c.good)), PeerAuth.DANE_TA),
    ("ta-wildcard-leaf", lambda c: ([ta(c.ca)], c.chain(c.wildcard)), PeerAuth.DANE_TA),
    ("ta-leaf-for-another-name", lambda c: ([ta(c.ca)], c.chain(c.other)), None),
    ("ta-expired-leaf", lambda c: ([ta(c.ca)], c.chain(c.expired)), None),
    ("ta-not-in-chain", lambda c: ([ta(c.ca)], c.chain(c.good, False)), None),
    ("ta-other-anchor", lambda c: ([ta(c.stranger)], c.chain(c.good)), None),
    # The anchor must have issued the leaf: a self-signed leaf next to the CA is no path.
    ("ta-not-the-issuer", lambda c: ([ta(c.ca)], c.chain(c.self_signed)), None),
    # A DANE-TA record matching the leaf itself is no trust anchor (RFC 7671 §5.2.2).
    (
        "ta-record-on-leaf",
        lambda c: ([TlsaRecord(2, 1, 1, ee(c.good).data)], c.chain(c.good)),
        None,
    ),
    ("pkix-usages-unusable", lambda c: ([ta(c.ca, usage=0)], c.chain(c.good)), None),
    ("no-chain", lambda c: ([ee(c.good)], ()), None),
    ("no-records", lambda c: ([], c.chain(c.good)), None),
]


@pytest.mark.parametrize(("name", "case", "expected"), CASES, ids=[c[0] for c in CASES])
def test_dane_match(certs: Certs, name: str, case: Case, expected: PeerAuth | None) -> None:
    records, chain = case(certs)
    assert peer.dane_match(records, chain, (f"_25._tcp.{HOST}", HOST)) is expected


@pytest.mark.parametrize(
    ("presented", "wanted", "matches"),
    [
        (("mx1.partner.test",), ("MX1.Partner.Test.",), True),
        (("*.partner.test",), ("mx1.partner.test",), True),
        (("*.partner.test",), ("partner.test",), False),
        (("*.partner.test",), ("a.mx1.partner.test",), False),
        (("*.test",), ("partner.test",), True),
        (("mx2.partner.test",), ("mx1.partner.test",), False),
        ((), ("mx1.partner.test",), False),
    ],
)
def test_names_match(presented: tuple[str, ...], wanted: tuple[str, ...], matches: bool) -> None:
    assert peer.names_match(presented, wanted) is matches


def test_cert_names_reads_the_subject_alt_name(certs: Certs) -> None:
    assert peer.cert_names(certs.wildcard.cert_der) == ("*.partner.test",)
