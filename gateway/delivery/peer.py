"""Who is at the far end of a TLS session with an MX host: DANE matching and WebPKI contexts.

Two ways to authenticate an MX host (TRANSPORT-SECURITY.md, "Delivery"):

* DANE (RFC 7672 §3): the handshake verifies nothing (``dane_context``); afterwards the chain
  the server presented (``peer_chain``) is matched against the host's DNSSEC-secure TLSA
  records by ``dane_match``. DANE-EE(3) compares the leaf certificate or its SPKI and ignores
  names and dates; DANE-TA(2) needs a certificate of the chain that matches the record, a leaf
  it issued, and a leaf naming the MX host (the TLSA base domain), in date. WebPKI roots play
  no part.
* MTA-STS (RFC 8461 §4.2): OpenSSL verifies during the handshake (``webpki_context``): a chain
  to a trusted root (the system's, plus ``[delivery] ca_file``), in date, naming the MX host.

``opportunistic_context`` is for mail nobody's policy protects: encrypted, not authenticated.
Everything here works on what a handshake gave; only the contexts touch OpenSSL.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import ssl
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from gateway.core import dane
from gateway.core.model import TlsaRecord
from gateway.delivery.transport import PeerAuth

# RFC 8461 §4.2 and RFC 7672 §1.3: TLS 1.2 or later wherever the peer must be authenticated.
MINIMUM_TLS = ssl.TLSVersion.TLSv1_2
# _ssl.ENCODING_DER, the format argument of the private chain certificates' public_bytes().
_ENCODING_DER = 2


def webpki_context(ca_file: Path | None = None) -> ssl.SSLContext:
    """A context that verifies the MX host's certificate under WebPKI during the handshake.

    The caller passes ``server_hostname=<MX host>``, which is both the SNI and the name the
    certificate must carry (subjectAltName; OpenSSL matches a wildcard only as the whole
    left-most label, as RFC 8461 §4.2 / RFC 6125 §6.4.3 want)."""
    context = ssl.create_default_context()
    if ca_file is not None:
        context.load_verify_locations(cafile=str(ca_file))
    context.minimum_version = MINIMUM_TLS
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def dane_context() -> ssl.SSLContext:
    """A context for a host whose TLSA records decide: no verification in the handshake
    (``dane_match`` judges the chain afterwards), TLS 1.2 or later, SNI from the caller."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = MINIMUM_TLS
    return context


def opportunistic_context() -> ssl.SSLContext:
    """Opportunistic TLS (RFC 7435): encryption against passive listeners, no certificate
    check, since nothing published says which certificate would be right."""
    return dane_context()


def peer_chain(ssl_object: Any) -> tuple[bytes, ...]:
    """The certificates the server presented, leaf first, in DER; empty when unknown.

    Python 3.11 exposes the presented chain only through the private ``_sslobj``
    (``SSLObject.get_unverified_chain`` is public from 3.13). A missing chain means DANE-TA
    cannot be verified; DANE-EE still can, from the leaf alone (``getpeercert(True)``)."""
    inner = getattr(ssl_object, "_sslobj", None)
    getter = getattr(inner, "get_unverified_chain", None)
    if getter is not None:
        try:
            chain = getter() or []
            return tuple(cert.public_bytes(_ENCODING_DER) for cert in chain)
        except (AttributeError, ValueError, ssl.SSLError):
            pass
    leaf = ssl_object.getpeercert(True) if ssl_object is not None else None
    return (leaf,) if leaf else ()


def handshake_failure(exc: BaseException, host: str) -> str:
    """Why a handshake with ``host`` failed, in words for the skipped-host line and the
    probe: the certificate's fault where OpenSSL says so, else the handshake's."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        message = (exc.verify_message or "").lower()
        if "hostname mismatch" in message or "ip address mismatch" in message:
            return f"certificate does not name {host}"
        if "expired" in message:
            return "certificate expired"
        if "self-signed" in message or "self signed" in message or "issuer" in message:
            return "certificate not signed by a trusted authority"
        return f"certificate not valid: {exc.verify_message}"
    reason = getattr(exc, "reason", None) or str(exc) or type(exc).__name__
    return f"TLS handshake failed: {reason}"


def dane_match(
    records: Iterable[TlsaRecord],
    chain_der: Sequence[bytes],
    names: Sequence[str],
    now: float | None = None,
) -> PeerAuth | None:
    """What authenticated the peer under the host's TLSA ``records``, or None for no match.

    ``chain_der``: the presented chain, leaf first. ``names``: the names the leaf may carry
    for DANE-TA (the TLSA base domain and the MX host, RFC 7672 §3.2.2). Any one usable
    record that matches is enough (RFC 7672 §3.1); DANE-EE is tried first as it needs less."""
    usable = [record for record in records if dane.usable(record)]
    if not chain_der or not usable:
        return None
    if any(_matches(r, chain_der[0]) for r in usable if r.usage == dane.USAGE_DANE_EE):
        return PeerAuth.DANE_EE
    anchors = [r for r in usable if r.usage == dane.USAGE_DANE_TA]
    if anchors and _dane_ta(anchors, chain_der, names, time.time() if now is None else now):
        return PeerAuth.DANE_TA
    return None


def _dane_ta(
    anchors: Sequence[TlsaRecord], chain_der: Sequence[bytes], names: Sequence[str], now: float
) -> bool:
    try:
        chain = [x509.load_der_x509_certificate(der) for der in chain_der]
    except ValueError:
        return False
    leaf = chain[0]
    if not _in_date(leaf, now) or not names_match(cert_names(leaf), names):
        return False
    # RFC 7671 §5.2.2: the trust anchor is an issuer in the chain, not the leaf itself.
    for index in range(1, len(chain)):
        if any(_matches(r, chain_der[index]) for r in anchors):
            return _issued_down_to(chain[: index + 1])
    return False


def _issued_down_to(path: Sequence[x509.Certificate]) -> bool:
    """Each certificate of ``path`` (leaf first) was signed by the next one."""
    for child, issuer in itertools.pairwise(path):
        try:
            child.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature):
            return False
    return True


def _matches(record: TlsaRecord, cert_der: bytes) -> bool:
    """RFC 6698 §2.1.2-2.1.3: the selected part of the certificate, digested per mtype."""
    if record.selector == dane.SELECTOR_SPKI:
        try:
            cert = x509.load_der_x509_certificate(cert_der)
        except ValueError:
            return False
        selected = cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    else:
        selected = cert_der
    if record.mtype == dane.MTYPE_SHA256:
        return hashlib.sha256(selected).digest() == record.data
    if record.mtype == dane.MTYPE_SHA512:
        return hashlib.sha512(selected).digest() == record.data
    return record.mtype == dane.MTYPE_FULL and selected == record.data


def _in_date(cert: x509.Certificate, now: float) -> bool:
    moment = dt.datetime.fromtimestamp(now, dt.UTC)
    return cert.not_valid_before_utc <= moment <= cert.not_valid_after_utc


def cert_names(cert: x509.Certificate | bytes) -> tuple[str, ...]:
    """The DNS names of a certificate's subjectAltName (no common-name fallback)."""
    if isinstance(cert, bytes):
        cert = x509.load_der_x509_certificate(cert)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    return tuple(name.lower().rstrip(".") for name in san.get_values_for_type(x509.DNSName))


def names_match(presented: Iterable[str], wanted: Iterable[str]) -> bool:
    """RFC 7672 §3.2.3 / RFC 6125 §6.4.3: a name matches exactly, case-insensitively; a
    wildcard only as the whole left-most label, standing for exactly one label."""
    wanted_names = {name.lower().rstrip(".") for name in wanted}
    for name in presented:
        if name in wanted_names:
            return True
        if name.startswith("*.") and any(
            "." in host and host.split(".", 1)[1] == name[2:] for host in wanted_names
        ):
            return True
    return False
