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
        # RFC 6698 §4.1 / RFC 7672 §3.1: full data that is not a certificate or SPKI cannot
        # match anything, so the record is unusable.
        return der_shape_ok(record.data, record.selector)
    expected = _DIGEST_LENGTH.get(record.mtype)
    return expected is not None and len(record.data) == expected


# RFC 5280 §4.1: Certificate ::= SEQUENCE { tbsCertificate SEQUENCE, signatureAlgorithm
# SEQUENCE, signatureValue BIT STRING }; §4.1.2.7: SubjectPublicKeyInfo ::= SEQUENCE {
# algorithm SEQUENCE, subjectPublicKey BIT STRING }. Tags in DER (X.690 §8.9, §8.6).
_SEQUENCE, _BIT_STRING = 0x30, 0x03
_SHAPES = {
    SELECTOR_CERT: (_SEQUENCE, _SEQUENCE, _BIT_STRING),
    SELECTOR_SPKI: (_SEQUENCE, _BIT_STRING),
}


def der_shape_ok(data: bytes, selector: int) -> bool:
    """True when ``data`` has the outer shape of a DER certificate (selector 0) or SPKI (1).

    What is checked: one outer SEQUENCE filling ``data`` exactly; inside it, exactly the
    elements RFC 5280 names, with their tags, each with a definite, minimal DER length that
    stays inside its parent; the BIT STRING's unused-bits octet is 0 to 7. Not checked: what
    is inside the inner SEQUENCEs, nor any signature. That is enough to tell a certificate
    from a digest or garbage; matching a live certificate belongs to the delivery path.
    """
    shape = _SHAPES.get(selector)
    outer = _read_element(data, 0, len(data))
    if shape is None or outer is None or outer[0] != _SEQUENCE or outer[2] != len(data):
        return False
    tags = []
    position, end = outer[1], outer[2]
    while position < end:
        element = _read_element(data, position, end)
        if element is None:
            return False
        tag, start, position = element
        if tag == _BIT_STRING and (start == position or data[start] > 7):
            return False  # X.690 §8.6.2: the first octet counts the unused bits, 0 to 7
        tags.append(tag)
    return tuple(tags) == shape


def _read_element(data: bytes, at: int, limit: int) -> tuple[int, int, int] | None:
    """One DER element at ``at``, inside ``data[:limit]``: (tag, contents start, end)."""
    if at + 2 > limit:
        return None
    tag, first = data[at], data[at + 1]
    if tag & 0x1F == 0x1F:
        return None  # a high tag number: none of the elements we look for has one
    start = at + 2
    if first < 0x80:
        length = first
    else:
        # X.690 §10.1: DER uses the definite form with the fewest octets, never the
        # indefinite form (0x80); four length octets are far more than a TLSA record holds.
        count = first & 0x7F
        if not 1 <= count <= 4 or start + count > limit or data[start] == 0:
            return None
        length = int.from_bytes(data[start : start + count], "big")
        if length < 0x80:
            return None
        start += count
    if start + length > limit:
        return None
    return tag, start, start + length


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
