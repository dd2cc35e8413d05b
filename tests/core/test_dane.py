"""DANE for SMTP (RFC 7672, RFC 6698, RFC 7671): which TLSA records a sender can use."""

from __future__ import annotations

import pytest

from gateway.core import dane
from gateway.core.model import DaneHostStatus, TlsaRecord


def tlsa(usage: int, selector: int, mtype: int, length: int) -> TlsaRecord:
    return TlsaRecord(
        usage, selector, mtype, bytes(range(256)) * (length // 256) + bytes(length % 256)
    )


@pytest.mark.parametrize(
    ("usage", "selector", "mtype", "length", "expected"),
    [
        # RFC 7672 §3.1: DANE-TA(2) and DANE-EE(3) are the usages for SMTP
        (3, 1, 1, 32, True),
        (3, 0, 1, 32, True),
        (2, 0, 1, 32, True),
        (2, 1, 1, 32, True),
        (3, 1, 2, 64, True),
        (2, 0, 2, 64, True),
        (3, 1, 0, 294, True),
        (2, 0, 0, 1200, True),
        # RFC 7672 §3.1.3: PKIX-TA(0) and PKIX-EE(1) are unusable for SMTP
        (0, 0, 1, 32, False),
        (1, 1, 1, 32, False),
        (0, 1, 2, 64, False),
        # unassigned usages, selectors and matching types (RFC 7671 §4)
        (4, 1, 1, 32, False),
        (255, 1, 1, 32, False),
        (3, 2, 1, 32, False),
        (3, 255, 1, 32, False),
        (3, 1, 3, 32, False),
        (3, 1, 255, 32, False),
        # a digest of the wrong length cannot match anything
        (3, 1, 1, 0, False),
        (3, 1, 1, 31, False),
        (3, 1, 1, 33, False),
        (3, 1, 1, 64, False),
        (3, 1, 2, 32, False),
        (3, 1, 2, 63, False),
        (3, 1, 2, 65, False),
        (2, 0, 0, 0, False),
    ],
    ids=[
        "dane-ee-spki-sha256",
        "dane-ee-cert-sha256",
        "dane-ta-cert-sha256",
        "dane-ta-spki-sha256",
        "dane-ee-spki-sha512",
        "dane-ta-cert-sha512",
        "dane-ee-spki-full",
        "dane-ta-cert-full",
        "pkix-ta",
        "pkix-ee",
        "pkix-ta-sha512",
        "usage-4",
        "usage-255",
        "selector-2",
        "selector-255",
        "mtype-3",
        "mtype-255",
        "sha256-empty",
        "sha256-31",
        "sha256-33",
        "sha256-64",
        "sha512-32",
        "sha512-63",
        "sha512-65",
        "full-empty",
    ],
)
def test_usable(usage: int, selector: int, mtype: int, length: int, expected: bool) -> None:
    record = tlsa(usage, selector, mtype, length)
    assert len(record.data) == length
    assert dane.usable(record) is expected


@pytest.mark.parametrize(
    ("records", "status"),
    [
        ((), DaneHostStatus.NONE),
        ((tlsa(3, 1, 1, 32),), DaneHostStatus.USABLE),
        ((tlsa(2, 0, 1, 32),), DaneHostStatus.USABLE),
        ((tlsa(0, 0, 1, 32),), DaneHostStatus.UNUSABLE),
        ((tlsa(1, 1, 1, 32), tlsa(0, 0, 1, 32)), DaneHostStatus.UNUSABLE),
        ((tlsa(3, 1, 1, 20),), DaneHostStatus.UNUSABLE),
        ((tlsa(3, 1, 9, 32),), DaneHostStatus.UNUSABLE),
        ((tlsa(0, 0, 1, 32), tlsa(3, 1, 1, 31), tlsa(3, 1, 1, 32)), DaneHostStatus.USABLE),
        ((tlsa(3, 1, 1, 32), tlsa(0, 0, 1, 32)), DaneHostStatus.USABLE),
    ],
    ids=[
        "no-records",
        "dane-ee",
        "dane-ta",
        "pkix-only",
        "two-pkix",
        "bad-digest-length-only",
        "unknown-mtype-only",
        "one-usable-among-unusable",
        "usable-first",
    ],
)
def test_host_status(records: tuple[TlsaRecord, ...], status: DaneHostStatus) -> None:
    assert dane.host_status(records) is status


def test_host_status_takes_any_iterable() -> None:
    assert dane.host_status(r for r in [tlsa(3, 1, 1, 32)]) is DaneHostStatus.USABLE
    assert dane.host_status(iter(())) is DaneHostStatus.NONE


@pytest.mark.parametrize(
    ("host", "port", "name"),
    [
        ("mx.example.com", 25, "_25._tcp.mx.example.com"),
        ("mx.xn--bcher-kva.example", 25, "_25._tcp.mx.xn--bcher-kva.example"),
        ("smtp.example.com", 465, "_465._tcp.smtp.example.com"),
    ],
    ids=["mx", "a-label-host", "other-port"],
)
def test_tlsa_name(host: str, port: int, name: str) -> None:
    assert dane.tlsa_name(host, port) == name


def test_tlsa_name_defaults_to_port_25() -> None:
    """RFC 7672 §2.2.3: the TLSA base domain of an MX host is _25._tcp.<host>."""
    assert dane.tlsa_name("mx.example.com") == "_25._tcp.mx.example.com"


def test_tlsa_record_presentation() -> None:
    assert str(TlsaRecord(3, 1, 1, bytes.fromhex("ab01"))) == "3 1 1 ab01"
