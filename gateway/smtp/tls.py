"""TLS on the way in: the server context, its reload on SIGHUP, and client certificates.

One ``ssl.SSLContext`` serves both listeners, STARTTLS (RFC 3207) and implicit TLS (RFC 8314):
TLS 1.2 or later, forward-secret AEAD ciphers only for TLS 1.2 (TLS 1.3's suites are all
AEAD), no compression, no session tickets kept across a reload.

Reloading loads the files into a scratch context first: a bad file (missing, wrong key)
leaves the certificate in service untouched. Loading into the live context then changes what
new handshakes present; sessions already in TLS keep theirs.

Client identity: with ``client_ca_file`` the context *requests* a certificate (CERT_OPTIONAL).
A client that sends none goes on as any other; one that sends a certificate that does not
verify against ``client_ca_file`` fails the handshake (OpenSSL's rule for a requested
certificate). A verified certificate names the client by its subjectAltName DNS names, or its
subject CN when it has no DNS names (RFC 6125 §6.4.4).
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.config.settings import Settings
from gateway.errors import ConfigError

# TLS 1.2 suites: ECDHE for forward secrecy, AEAD only (RFC 9325 §4.2).
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL"


@dataclass(frozen=True)
class TlsFacts:
    """What a session's TLS was: for the Received: field, the log and client identity."""

    version: str  # "TLSv1.3"
    cipher: str  # "TLS_AES_256_GCM_SHA384"
    client_names: tuple[str, ...] = ()  # from a verified client certificate


class ServerTls:
    """The inbound TLS context, built from [smtp] tls_cert, tls_key and client_ca_file."""

    def __init__(self, settings: Settings) -> None:
        smtp = settings.smtp
        self.cert_file = str(settings.path(smtp.tls_cert))
        self.key_file = str(settings.path(smtp.tls_key))
        self.context = _new_context()
        self._load(self.context, "smtp.tls_cert")
        if smtp.client_ca_file:
            ca_file = str(settings.path(smtp.client_ca_file))
            try:
                self.context.load_verify_locations(cafile=ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError("smtp.client_ca_file", f"cannot load {ca_file}: {exc}") from exc
            self.context.verify_mode = ssl.CERT_OPTIONAL

    def _load(self, context: ssl.SSLContext, key: str) -> None:
        try:
            context.load_cert_chain(self.cert_file, self.key_file)
        except (OSError, ssl.SSLError) as exc:
            problem = f"cannot load {self.cert_file} with {self.key_file}: {exc}"
            raise ConfigError(key, problem) from exc

    def reload(self) -> str:
        """Load the certificate files again for new handshakes: "" if done, else the problem
        (and the certificate in service is kept)."""
        try:
            self._load(_new_context(), "smtp.tls_cert")
        except ConfigError as exc:
            return exc.problem
        self._load(self.context, "smtp.tls_cert")
        return ""


def _new_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    context.options |= ssl.OP_NO_TICKET  # no ticket key that outlives a reload
    return context


def tls_facts(transport: Any) -> TlsFacts | None:
    """The TLS of a connection (None when it is plaintext)."""
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    if ssl_object is None:
        return None
    cipher = ssl_object.cipher()
    return TlsFacts(
        version=ssl_object.version() or "",
        cipher=cipher[0] if cipher else "",
        client_names=certificate_names(ssl_object.getpeercert()),
    )


def certificate_names(cert: dict[str, Any] | None) -> tuple[str, ...]:
    """The DNS names of a verified certificate (``getpeercert()``): its subjectAltName DNS
    entries, else its subject's CN. Empty when no certificate was verified."""
    if not cert:
        return ()
    names = [value for kind, value in cert.get("subjectAltName", ()) if kind == "DNS"]
    if not names:
        names = [v for rdn in cert.get("subject", ()) for k, v in rdn if k == "commonName"]
    return tuple(_fold(name) for name in names)


def names_match(presented: Iterable[str], trusted: Sequence[str]) -> str:
    """The first trusted host name a certificate names ("" if none). A wildcard in the
    certificate covers exactly one leftmost label (RFC 6125 §6.4.3)."""
    wanted = [_fold(name) for name in trusted]
    for name in presented:
        for host in wanted:
            if name == host:
                return host
            if name.startswith("*.") and host.partition(".")[2] == name[2:] and "." in name[2:]:
                return host
    return ""


def _fold(name: str) -> str:
    return name.strip().rstrip(".").lower()
