"""DANE for SMTP (RFC 7672, RFC 6698, RFC 7671): which TLSA records a sender can use."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

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
    ],
    ids=[
        "dane-ee-spki-sha256",
        "dane-ee-cert-sha256",
        "dane-ta-cert-sha256",
        "dane-ta-spki-sha256",
        "dane-ee-spki-sha512",
        "dane-ta-cert-sha512",
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
    ],
)
def test_usable(usage: int, selector: int, mtype: int, length: int, expected: bool) -> None:
    record = tlsa(usage, selector, mtype, length)
    assert len(record.data) == length
    assert dane.usable(record) is expected


# --- matching type 0: the full certificate or SPKI (RFC 6698 §2.1.3, §4.1) -------------------


def der(tag: int, contents: bytes) -> bytes:
    """One DER element (X.690 §8.1), the length in its shortest form."""
    if len(contents) < 0x80:
        return bytes([tag, len(contents)]) + contents
    length = len(contents).to_bytes((len(contents).bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + contents


SEQ, BITS, INT, OID = 0x30, 0x03, 0x02, 0x06
ALGORITHM = der(SEQ, der(OID, bytes.fromhex("2a8648ce3d0201")))  # id-ecPublicKey
SPKI = der(SEQ, ALGORITHM + der(BITS, b"\x00\x04" + bytes(64)))
TBS = der(SEQ, der(INT, b"\x01") + ALGORITHM + SPKI + bytes([0x04, 0x81, 0x90]) + bytes(0x90))
CERT = der(SEQ, TBS + ALGORITHM + der(BITS, b"\x00" + bytes(70)))


def real_certificate() -> tuple[bytes, bytes]:
    """A self-signed certificate and its SPKI, in DER, made by the cryptography package."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mx.dane.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return cert.public_bytes(serialization.Encoding.DER), spki


def test_a_real_certificate_and_spki_are_usable_in_full() -> None:
    cert, spki = real_certificate()
    assert dane.usable(TlsaRecord(3, 0, 0, cert))
    assert dane.usable(TlsaRecord(2, 0, 0, cert))
    assert dane.usable(TlsaRecord(3, 1, 0, spki))
    # each shape belongs to its selector
    assert not dane.usable(TlsaRecord(3, 1, 0, cert))
    assert not dane.usable(TlsaRecord(3, 0, 0, spki))


# RFC 6698 §4.1 / RFC 7672 §3.1: a TLSA record whose full data cannot be a certificate (selector
# 0) or SubjectPublicKeyInfo (selector 1) matches nothing: it is unusable, and a host with only
# such records has no usable DANE.
@pytest.mark.parametrize(
    ("selector", "data", "usable"),
    [
        (0, CERT, True),
        (1, SPKI, True),
        (0, b"", False),
        (1, b"", False),
        (1, bytes(range(256)) + bytes(38), False),
        (0, bytes(1200), False),
        (1, bytes.fromhex("ab" * 32), False),
        (1, SPKI[:-1], False),
        (1, SPKI + b"\x00", False),
        (1, SPKI + SPKI, False),
        (0, CERT[:-10], False),
        (1, der(0x31, ALGORITHM + der(BITS, b"\x00\x04")), False),
        (1, der(SEQ, ALGORITHM), False),
        (1, der(SEQ, ALGORITHM + der(BITS, b"\x00") + der(INT, b"\x01")), False),
        (1, der(SEQ, der(BITS, b"\x00") + ALGORITHM), False),
        (1, der(SEQ, ALGORITHM + der(BITS, b"")), False),
        (1, der(SEQ, ALGORITHM + der(BITS, b"\x08\xff")), False),
        (0, der(SEQ, TBS + ALGORITHM), False),
        (1, bytes([SEQ, 0x80]) + ALGORITHM + der(BITS, b"\x00") + b"\x00\x00", False),
        (1, bytes([SEQ, 0x81, len(SPKI) - 2]) + SPKI[2:], False),
        (1, bytes([SEQ, 0x82, 0x00, len(SPKI) - 2]) + SPKI[2:], False),
        (1, bytes([SEQ, 0x85, 0x01]) + bytes(4), False),
        (1, bytes([0x3F, 0x01]) + SPKI[1:], False),
    ],
    ids=[
        "certificate-shape",
        "spki-shape",
        "empty-cert",
        "empty-spki",
        "bytes-not-der",
        "zeros",
        "a-digest-given-as-full",
        "truncated",
        "trailing-byte",
        "two-spkis",
        "truncated-certificate",
        "outer-set",
        "spki-without-key",
        "spki-extra-element",
        "spki-elements-swapped",
        "bit-string-without-unused-count",
        "bit-string-unused-count-8",
        "certificate-without-signature",
        "indefinite-length",
        "long-form-for-short-length",
        "length-with-leading-zero",
        "five-length-octets",
        "high-tag-number",
    ],
)
def test_full_data_must_parse(selector: int, data: bytes, usable: bool) -> None:
    for usage in (2, 3):
        record = TlsaRecord(usage, selector, 0, data)
        assert dane.usable(record) is usable
        expected = DaneHostStatus.USABLE if usable else DaneHostStatus.UNUSABLE
        assert dane.host_status([record]) is expected


def test_a_certificate_longer_than_127_bytes_uses_the_long_length_form() -> None:
    assert CERT[1] == 0x82
    assert len(CERT) > 256
    assert dane.usable(TlsaRecord(3, 0, 0, CERT))


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
