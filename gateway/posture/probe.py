"""The active probe: dial a recipient domain's MX hosts and report what a sender would meet.

For each MX host: EHLO, STARTTLS (RFC 3207), the TLS version and cipher, the certificate chain's
names and expiry, whether it verifies under WebPKI for the MX host name (RFC 8461 §4.2: system
roots plus ``[delivery] ca_file``), whether it matches the host's TLSA records (RFC 7672 §3),
and whether REQUIRETLS is advertised once TLS is up (RFC 8689 §4). Every host ends with QUIT,
and each is bounded by ``[delivery] timeout``; hosts are probed concurrently.

The probe tells; it never delivers. ``judge`` (in ``probejudge``) says whether a host meets the
domain's own policy. Nothing here raises for what a server does: every failure is a fact, in
plain words, in ``HostProbe.error``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from gateway.core import dane
from gateway.core.model import StsMode, StsPolicy, TlsaRecord
from gateway.core.mtasts import mx_matches
from gateway.delivery.peer import dane_context, dane_match, peer_chain
from gateway.delivery.transport import PeerAuth
from gateway.posture.certinfo import Certificate, describe_certificate

REPLY_LINE_LIMIT = 2048  # RFC 5321 §4.5.3.1.5 allows 512; leave room for lax servers
REPLY_LINES_LIMIT = 100


class Requirement:
    """What the domain's published policy asks of this host (RFC 7672 §2.2 precedence)."""

    DANE = "dane"  # usable, DNSSEC-secure TLSA records
    MTA_STS = "mta-sts"  # an enforce policy
    NONE = ""  # nothing published: opportunistic TLS at best


@dataclass(frozen=True)
class ProbeOptions:
    port: int
    timeout: float
    webpki: ssl.SSLContext  # roots and rules the delivery path verifies MX hosts with
    helo: str = "localhost"
    allow_private_addresses: bool = False


@dataclass(frozen=True)
class HostProbe:
    """What one MX host showed. ``None`` for a question the probe never got to ask."""

    host: str
    port: int
    requirement: str = Requirement.NONE
    in_policy: bool | None = None  # the MTA-STS policy's mx patterns name the host
    address: str = ""
    skipped: tuple[str, ...] = ()  # addresses not dialled, or that did not answer, and why
    reachable: bool = False
    greeting: str = ""
    starttls: bool | None = None  # offered in the EHLO answer
    tls_version: str = ""
    cipher: str = ""
    certificate: Certificate | None = None
    chain_length: int = 0
    webpki: bool | None = None
    webpki_error: str = ""
    tlsa: tuple[TlsaRecord, ...] = ()  # the usable records it was matched against
    dane: PeerAuth | None = None  # DANE_EE or DANE_TA when matched, NONE when not
    requiretls: bool | None = None
    error: str = ""
    elapsed_ms: float = 0.0


@dataclass
class _Facts:
    """Filled in as the conversation goes; frozen into a ``HostProbe`` at the end."""

    stage: str = "connecting"
    greeting: str = ""
    starttls: bool | None = None
    tls_version: str = ""
    cipher: str = ""
    chain: list[bytes] = field(default_factory=list)
    requiretls: bool | None = None
    error: str = ""

    def copy(self, other: _Facts) -> None:
        for name in ("stage", "greeting", "starttls", "tls_version", "cipher", "chain"):
            setattr(self, name, getattr(other, name))
        self.requiretls, self.error = other.requiretls, other.error


class _HandshakeFailed(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def requirement_of(tlsa: Sequence[TlsaRecord], policy: StsPolicy | None) -> str:
    """RFC 7672 §2.2: usable TLSA records govern the host, even where MTA-STS is published."""
    if any(dane.usable(record) for record in tlsa):
        return Requirement.DANE
    if policy is not None and policy.mode is StsMode.ENFORCE:
        return Requirement.MTA_STS
    return Requirement.NONE


def address_refusal(address: str, allow_private: bool) -> str:
    """Why ``address`` is never dialled, or "" (the SSRF guard of the delivery path)."""
    if allow_private:
        return ""
    ip = ipaddress.ip_address(address)
    if ip.is_global and not ip.is_multicast:
        return ""
    return f"{address} not dialled: not a public address ([delivery] allow_private_addresses)"


async def probe(
    host: str,
    addresses: Sequence[str],
    tlsa_records: Sequence[TlsaRecord],
    sts_policy: StsPolicy | None,
    options: ProbeOptions,
) -> HostProbe:
    """Probe one MX host at the first of ``addresses`` that answers."""
    started = time.perf_counter()
    usable = tuple(r for r in tlsa_records if dane.usable(r))
    base = HostProbe(
        host=host,
        port=options.port,
        requirement=requirement_of(usable, sts_policy),
        in_policy=_in_policy(sts_policy, host),
        tlsa=usable,
    )
    result = await _probe_addresses(base, addresses, options)
    return replace(result, elapsed_ms=round((time.perf_counter() - started) * 1000, 1))


async def probe_hosts(
    hosts: Sequence[tuple[str, Sequence[str], Sequence[TlsaRecord]]],
    sts_policy: StsPolicy | None,
    options: ProbeOptions,
) -> list[HostProbe]:
    """Every (host, addresses, TLSA records) at once, results in the order given."""
    return list(
        await asyncio.gather(
            *(probe(host, addrs, tlsa, sts_policy, options) for host, addrs, tlsa in hosts)
        )
    )


def _in_policy(policy: StsPolicy | None, host: str) -> bool | None:
    if policy is None or policy.mode is StsMode.NONE:
        return None
    return any(mx_matches(pattern, host) for pattern in policy.mx)


async def _probe_addresses(
    base: HostProbe, addresses: Sequence[str], options: ProbeOptions
) -> HostProbe:
    if not addresses:
        return replace(base, error=f"{base.host} has no address (A or AAAA records)")
    skipped: list[str] = []
    allowed = []
    for address in addresses:
        refusal = address_refusal(address, options.allow_private_addresses)
        if refusal:
            skipped.append(refusal)
        else:
            allowed.append(address)
    failures: list[str] = []
    for address in allowed:
        result = await _probe_address(base, address, options)
        if result.reachable:
            return replace(result, skipped=tuple(skipped + failures))
        failures.append(f"{address}: {result.error}")
    if not allowed:
        error = "no address may be dialled"
    elif len(allowed) == 1:
        error, failures = failures[0], []
    else:
        error = f"none of its {len(allowed)} addresses answered"
    return replace(base, skipped=tuple(skipped + failures), error=error)


async def _probe_address(base: HostProbe, address: str, options: ProbeOptions) -> HostProbe:
    facts = _Facts()
    try:
        async with asyncio.timeout(options.timeout):
            webpki, webpki_error = await _verifying_session(base.host, address, options, facts)
    except TimeoutError:
        facts.error = f"no answer within {options.timeout:g} s ({facts.stage})"
        webpki, webpki_error = None, ""
    except OSError as exc:
        if facts.stage == "connecting":
            return replace(base, address=address, error=_connect_error(exc))
        facts.error = f"connection lost while {facts.stage}: {_os_error(exc)}"
        webpki, webpki_error = None, ""
    return _frozen(base, address, facts, webpki, webpki_error)


async def _verifying_session(
    host: str, address: str, options: ProbeOptions, facts: _Facts
) -> tuple[bool | None, str]:
    """The conversation under the WebPKI context. When its handshake fails, a second
    conversation that accepts anything, to report what the server does offer."""
    try:
        await _session(host, address, options, options.webpki, facts)
    except _HandshakeFailed as refused:
        inspected = _Facts()
        try:
            await _session(host, address, options, _inspecting_context(), inspected)
        except _HandshakeFailed as failed:
            inspected.error = f"TLS handshake failed: {failed.reason}"
        facts.copy(inspected)
        if not facts.tls_version:
            return None, ""
        return False, refused.reason
    if facts.tls_version:
        return True, ""
    return None, ""


async def _session(
    host: str, address: str, options: ProbeOptions, context: ssl.SSLContext, facts: _Facts
) -> None:
    facts.stage = "connecting"
    reader, writer = await asyncio.open_connection(address, options.port)
    smtp = _Smtp(reader, writer, facts)
    try:
        await _converse(smtp, host, options.helo, context, facts)
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), 1.0)


async def _converse(
    smtp: _Smtp, host: str, helo: str, context: ssl.SSLContext, facts: _Facts
) -> None:
    if await _starttls_offered(smtp, helo, facts):
        code, lines = await smtp.command("STARTTLS", "answering STARTTLS")
        if code != 220:
            facts.error = f"STARTTLS refused: {code} {' '.join(lines)[:200]}"
        else:
            await smtp.start_tls(context, host)
            code, lines = await smtp.command(f"EHLO {helo}", "answering EHLO after STARTTLS")
            if code == 250:
                # RFC 8689 §4: REQUIRETLS counts only when advertised over TLS.
                facts.requiretls = "REQUIRETLS" in _extensions(lines)
    # RFC 5321 §3.1: also after a refused greeting the client should send QUIT.
    await smtp.quit()


async def _starttls_offered(smtp: _Smtp, helo: str, facts: _Facts) -> bool:
    code, lines = await smtp.read("waiting for the greeting")
    facts.greeting = " ".join(lines)[:200]
    if code != 220:
        facts.error = f"greeting refused: {code} {facts.greeting}"
        return False
    code, lines = await smtp.command(f"EHLO {helo}", "answering EHLO")
    if code != 250:
        facts.error = f"EHLO refused: {code} {' '.join(lines)[:200]}"
        return False
    facts.starttls = "STARTTLS" in _extensions(lines)
    return facts.starttls


def _extensions(lines: Sequence[str]) -> set[str]:
    # RFC 5321 §4.1.1.1: the first line greets, each further line names one extension.
    return {line.split(" ", 1)[0].upper() for line in lines[1:] if line}


class _Smtp:
    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, facts: _Facts
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.facts = facts

    async def read(self, stage: str) -> tuple[int, list[str]]:
        self.facts.stage = stage
        lines: list[str] = []
        while len(lines) < REPLY_LINES_LIMIT:
            raw = await self.reader.readline()
            if not raw:
                raise ConnectionResetError("the server closed the connection")
            line = raw[:REPLY_LINE_LIMIT].decode("utf-8", "replace").rstrip("\r\n")
            if len(line) < 3 or not line[:3].isdigit():
                raise ConnectionResetError(f"not an SMTP reply: {line[:60]!r}")
            lines.append(line[4:])
            if line[3:4] != "-":
                return int(line[:3]), lines
        raise ConnectionResetError("a reply of more than 100 lines")

    async def command(self, text: str, stage: str) -> tuple[int, list[str]]:
        self.facts.stage = stage
        self.writer.write(text.encode("ascii") + b"\r\n")
        await self.writer.drain()
        return await self.read(stage)

    async def quit(self) -> None:
        """RFC 5321 §4.1.1.10: end politely; a server that hangs up first is no fault."""
        with contextlib.suppress(OSError, ssl.SSLError):
            await self.command("QUIT", "answering QUIT")

    async def start_tls(self, context: ssl.SSLContext, host: str) -> None:
        """The handshake, SNI the MX host name (RFC 8461 §4.2; RFC 7672 §8.1: the TLSA base
        domain, which is the MX host name)."""
        self.facts.stage = "in the TLS handshake"
        try:
            await self.writer.start_tls(context, server_hostname=host)
        except ssl.SSLCertVerificationError as exc:
            raise _HandshakeFailed(exc.verify_message or str(exc)) from exc
        except ssl.SSLError as exc:
            raise _HandshakeFailed(_ssl_reason(exc)) from exc
        except ConnectionError as exc:
            raise _HandshakeFailed(_os_error(exc)) from exc
        tls = self.writer.get_extra_info("ssl_object")
        if isinstance(tls, ssl.SSLObject):
            self.facts.tls_version = tls.version() or ""
            self.facts.cipher = (tls.cipher() or ("",))[0]
            self.facts.chain = list(peer_chain(tls))


def _inspecting_context() -> ssl.SSLContext:
    """Accepts any certificate, to tell what a refused one is; never used to send mail.
    The same TLS 1.2 floor as delivery: an older server shows as a failed handshake."""
    return dane_context()


def _frozen(
    base: HostProbe, address: str, facts: _Facts, webpki: bool | None, webpki_error: str
) -> HostProbe:
    certificate = describe_certificate(facts.chain[0]) if facts.chain else None
    if webpki_error.startswith("Hostname mismatch") and certificate is not None:
        # OpenSSL's words name only the host; the names the certificate does carry say more.
        carried = ", ".join(certificate.names) or "no DNS name"
        webpki_error = f"it names {carried}, not {base.host}"
    matched: PeerAuth | None = None
    if base.tlsa and facts.chain:
        matched = dane_match(base.tlsa, facts.chain, (base.host,)) or PeerAuth.NONE
    return replace(
        base,
        address=address,
        reachable=True,
        greeting=facts.greeting,
        starttls=facts.starttls,
        tls_version=facts.tls_version,
        cipher=facts.cipher,
        certificate=certificate,
        chain_length=len(facts.chain),
        webpki=webpki,
        webpki_error=webpki_error,
        dane=matched,
        requiretls=facts.requiretls,
        error=facts.error,
    )


def _connect_error(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return f"cannot connect: {_os_error(exc)}"


def _os_error(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


def _ssl_reason(exc: ssl.SSLError) -> str:
    reason = (exc.reason or "").lower().replace("_", " ")
    return reason or str(exc)
