"""What a certificate says about itself, for people: names, issuer, dates. Never a verdict:
verification is the TLS library's (WebPKI) or the TLSA records' (DANE) business."""

from __future__ import annotations

import math
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import NameOID

DAY = 86400.0


@dataclass(frozen=True)
class Certificate:
    subject: str  # the subject's common name, or the whole subject when it has none
    names: tuple[str, ...]  # subjectAltName DNS names, as written
    issuer: str
    not_before: float  # seconds since the epoch
    not_after: float
    self_signed: bool

    def days_left(self, now: float) -> int:
        """Whole days until not-after; negative once it has passed."""
        return math.floor((self.not_after - now) / DAY)


def describe_certificate(der: bytes) -> Certificate | None:
    """The leaf's facts, or None when it cannot be parsed at all."""
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        return None
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = tuple(san.get_values_for_type(x509.DNSName))
    except (x509.ExtensionNotFound, ValueError):
        names = ()
    return Certificate(
        subject=_name(cert.subject),
        names=names,
        issuer=_name(cert.issuer),
        not_before=cert.not_valid_before_utc.timestamp(),
        not_after=cert.not_valid_after_utc.timestamp(),
        self_signed=cert.subject == cert.issuer,
    )


def _name(name: x509.Name) -> str:
    common = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    if common:
        value = common[0].value
        return value if isinstance(value, str) else value.decode("utf-8", "replace")
    return name.rfc4514_string()
