"""A throw-away certificate authority and the leaf certificates the rig's servers present."""

import datetime as dt
import hashlib
import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Backdated so a client whose clock is a little behind still accepts the certificates.
_BACKDATE = dt.timedelta(hours=1)
_LIFETIME = dt.timedelta(days=30)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _safe_stem(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]", "_", name)


def _spki(cert: x509.Certificate) -> bytes:
    return cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@dataclass(frozen=True)
class Leaf:
    """A leaf certificate and key on disk, plus the digests that TLSA records are made of."""

    names: tuple[str, ...]
    cert_file: Path
    key_file: Path
    cert_der: bytes

    @property
    def spki_der(self) -> bytes:
        return _spki(x509.load_der_x509_certificate(self.cert_der))

    def tlsa_data(self, selector: int, mtype: int) -> str:
        """The hex association data of a TLSA record with this selector and matching type."""
        return tlsa_digest(self.spki_der if selector == 1 else self.cert_der, mtype)


def _general_name(name: str) -> x509.GeneralName:
    """An IP address SAN for an address (a server reached by IP), a DNS name otherwise."""
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def tlsa_digest(data: bytes, mtype: int) -> str:
    if mtype == 0:
        return data.hex()
    if mtype == 1:
        return hashlib.sha256(data).hexdigest()
    if mtype == 2:
        return hashlib.sha512(data).hexdigest()
    raise ValueError(f"unknown TLSA matching type {mtype}")


class RigCA:
    """A root CA (EC P-256) writing its certificate and the leaves it issues under `directory`."""

    def __init__(
        self, directory: Path, common_name: str = "Safeguarding Gateway Test Root"
    ) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._now = dt.datetime.now(dt.UTC)
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        public = self._key.public_key()
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(self._now - _BACKDATE)
            .not_valid_after(self._now + _LIFETIME)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        self.ca_file = directory / "ca.pem"
        self.ca_file.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        self.cert_der = self.cert.public_bytes(serialization.Encoding.DER)

    def tlsa_data(self, selector: int, mtype: int) -> str:
        """TLSA association data for the root itself (as a trust anchor, usage 0 or 2)."""
        return tlsa_digest(_spki(self.cert) if selector == 1 else self.cert_der, mtype)

    def issue(
        self, names: tuple[str, ...], stem: str | None = None, *, expired: bool = False
    ) -> Leaf:
        """A server certificate whose subjectAltName lists exactly `names` (DNS names, or IP
        addresses given as such); `expired`: its validity ended a day ago."""
        return _leaf(names, stem, self.directory, (self.cert, self._key), self._now, expired)

    def self_signed(self, names: tuple[str, ...], stem: str | None = None) -> Leaf:
        """A leaf signed by its own key, trusted by nobody: what a DANE-EE host may present."""
        return _leaf(names, stem or f"self-{names[0]}", self.directory, None, self._now, False)


def _leaf(
    names: tuple[str, ...],
    stem: str | None,
    directory: Path,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    now: dt.datetime,
    expired: bool,
) -> Leaf:
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    issuer_cert, issuer_key = issuer if issuer is not None else (None, key)
    issuer_name = issuer_cert.subject if issuer_cert is not None else subject
    ca_ski = (
        issuer_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        if issuer_cert is not None
        else x509.SubjectKeyIdentifier.from_public_key(public)
    )
    ends = now - dt.timedelta(days=1) if expired else now + _LIFETIME
    starts = ends - dt.timedelta(days=2) if expired else now - _BACKDATE
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(starts)
        .not_valid_after(ends)
        .add_extension(
            x509.SubjectAlternativeName([_general_name(n) for n in names]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(issuer_key, hashes.SHA256())
    )
    base = directory / _safe_stem(stem or names[0])
    cert_file = base.with_name(base.name + ".crt")
    key_file = base.with_name(base.name + ".key")
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(_pem_key(key))
    key_file.chmod(0o600)
    return Leaf(
        names=names,
        cert_file=cert_file,
        key_file=key_file,
        cert_der=cert.public_bytes(serialization.Encoding.DER),
    )
