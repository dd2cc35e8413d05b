"""DANE for SMTP (RFC 7672, RFC 6698, RFC 7671): which TLSA records a sender can use.

This release checks that DANE is published and usable; matching a live certificate against the
records belongs to the delivery path and comes with it.
"""

from __future__ import annotations

from collections.abc import Iterable

from gateway.core.model import DaneHostStatus, TlsaRecord

# RFC 6698 §7.2-7.4 registries
USAGE_PKIX_TA, USAGE_PKIX_EE, USAGE_DANE_TA, USAGE_DANE_EE = 0, 1, 2, 3
SELECTOR_CERT, SELECTOR_SPKI = 0, 1
MTYPE_FULL, MTYPE_SHA256, MTYPE_SHA512 = 0, 1, 2
_DIGEST_LENGTH = {MTYPE_SHA256: 32, MTYPE_SHA512: 64}


def tlsa_name(host: str, port: int = 25) -> str:
    """RFC 7672 §2.2.3: the TLSA base domain of an MX host is ``_25._tcp.<host>``."""
    return f"_{port}._tcp.{host}"


def usable(record: TlsaRecord) -> bool:
    """RFC 7672 §3.1: SMTP clients use DANE-TA(2) and DANE-EE(3) records only; PKIX usages
    are unusable for SMTP. RFC 7671 §5: unknown selectors and matching types, and digests of
    the wrong length, make a record unusable."""
    if record.usage not in (USAGE_DANE_TA, USAGE_DANE_EE):
        return False
    if record.selector not in (SELECTOR_CERT, SELECTOR_SPKI):
        return False
    if record.mtype == MTYPE_FULL:
        return len(record.data) > 0
    expected = _DIGEST_LENGTH.get(record.mtype)
    return expected is not None and len(record.data) == expected


def host_status(records: Iterable[TlsaRecord]) -> DaneHostStatus:
    """Classify a DNSSEC-secure TLSA RRset of one MX host."""
    found = list(records)
    if not found:
        return DaneHostStatus.NONE
    if any(usable(record) for record in found):
        return DaneHostStatus.USABLE
    # RFC 7672 §2.2: records present but none usable: TLS is still mandatory, but
    # unauthenticated, which is not the protection safeguarding mail needs.
    return DaneHostStatus.UNUSABLE
