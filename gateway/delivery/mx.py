"""Direct delivery to a recipient domain's MX hosts, with the TLS its policy demands.

``MxTransport.send`` takes one transaction whose recipients share a domain, plans the hosts
(``mxplan``: DANE, else MTA-STS enforce, else opportunistic for unflagged mail only), and
tries them in preference order, each of its addresses in turn. A host that cannot prove what
its plan requires is skipped with a line saying why ("mx1.x.test [192.0.2.1]: certificate
does not name mx1.x.test"); so is one that answers 4xx (RFC 5321 §4.5.4.1). Nothing is ever
sent in plaintext, or to an unauthenticated peer, where the plan asks for more.

Which failure tries the next host and which is final, and what ``DeliveryFailed`` says when
every host failed, is ``mxattempts``'s to decide.

A connection that ended its transaction cleanly is kept for the next message to the same host
that needs the same proof (``mxcache``): tried first, after RSET, before any new connection to
that host; one the host has closed meanwhile is replaced, with nothing sent twice.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import aiosmtplib

from gateway import logs
from gateway.config.settings import DeliverySettings
from gateway.core import dane
from gateway.core.addresses import AddressError, address_domain
from gateway.core.model import DnsAnswer, DnsStatus, DomainFacts
from gateway.delivery import mxplan, peer, pipelining
from gateway.delivery.dataphase import send_data
from gateway.delivery.mxattempts import (
    CONNECT,
    REQUIRETLS,
    SMTP,
    TLS,
    Attempts,
    HostFailed,
    give_up,
    lost_connection,
    lost_in_data,
    next_host_or_fail,
    nobody_accepted,
)
from gateway.delivery.mxcache import Connection, ConnectionCache, quit_politely
from gateway.delivery.mxplan import Candidate, Requirement
from gateway.delivery.smarthost import send_recipients, supported
from gateway.delivery.transport import (
    Evidence,
    PeerAuth,
    Reply,
    Sent,
    Transaction,
)
from gateway.errors import DeliveryFailed


class FactsSource(Protocol):
    """A domain's transport facts as the verdict saw them (``posture.DomainChecker``)."""

    async def facts(self, domain: str) -> DomainFacts: ...


class AddressSource(Protocol):
    """An MX host's A and AAAA records (``posture.dns.DnsResolver``)."""

    async def addresses(self, name: str) -> DnsAnswer[str]: ...


class MxTransport:
    """A ``Transport`` that delivers to the recipients' MX hosts itself ([delivery])."""

    def __init__(
        self,
        settings: DeliverySettings,
        facts: FactsSource,
        addresses: AddressSource,
        local_hostname: str,
        clock: Callable[[], float] = time.time,
        cache: ConnectionCache | None = None,
    ) -> None:
        self._settings = settings
        # The posture's checker: its memo ([dns] facts_cache_seconds) spares a burst of
        # queued messages to one domain the lookups, and never keeps a temporary failure.
        self._facts = facts
        self._addresses = addresses
        self._local_hostname = local_hostname
        self._clock = clock
        self._webpki = peer.webpki_context(Path(settings.ca_file) if settings.ca_file else None)
        self._log = logs.get("gateway.delivery.mx")
        self._cache = cache or ConnectionCache()

    async def send(self, transaction: Transaction) -> Sent:
        domain = _one_domain(transaction)
        facts = await self._facts.facts(domain)
        plan = mxplan.plan(facts, transaction.flagged)
        attempts = Attempts()
        for line in plan.passed_over:
            attempts.add(line, HostFailed(TLS, line))
        for candidate in plan.candidates:
            reused = await self._on_cached(candidate, transaction, attempts)
            if reused is not None:
                return reused
            for address in await self._dialable(candidate.host, attempts):
                try:
                    connection = await self._open(candidate, address)
                    return await self._deliver(connection, transaction, attempts)
                except HostFailed as exc:
                    attempts.add(f"{candidate.host} [{address}]: {exc.why}", exc)
                    self._logger(candidate, address).info(
                        "mx-attempt", outcome="skipped", reason=exc.why
                    )
        raise give_up(transaction, attempts)

    async def _on_cached(
        self, candidate: Candidate, transaction: Transaction, attempts: Attempts
    ) -> Sent | None:
        """The transaction on a kept connection that proved what ``candidate`` asks, if one
        is there; None when none is, or it failed before the host took anything (after DATA
        that is ``DeliveryFailed``): a new connection to the host follows."""
        cached = await self._cache.take(candidate)
        if cached is None:
            return None
        address = cached.evidence.address
        try:
            return await self._deliver(cached, transaction, attempts)
        except HostFailed as exc:
            if exc.kind != CONNECT:  # one the host had closed meanwhile is no finding
                attempts.add(f"{candidate.host} [{address}]: {exc.why}", exc)
            log = self._logger(candidate, address)
            log.info("mx-attempt", outcome="skipped", reason=exc.why, reused=True)
            return None

    async def close(self) -> None:
        """QUIT the connections kept for reuse."""
        await self._cache.close()

    def _logger(self, candidate: Candidate, address: str) -> Any:
        return self._log.bind(
            host=candidate.host, address=address, requirement=candidate.requirement.value
        )

    async def _dialable(self, host: str, attempts: Attempts) -> list[str]:
        answer = await self._addresses.addresses(host)
        if answer.status is DnsStatus.TEMPORARY:
            why = f"address lookup failed: {answer.error or 'temporary DNS error'}"
            attempts.add(f"{host}: {why}", HostFailed(CONNECT, why))
            return []
        if not answer.records:
            attempts.add(f"{host}: no address records", HostFailed(CONNECT, "no address"))
            return []
        allowed = []
        for address in answer.records:
            if self._settings.allow_private_addresses or _public(address):
                allowed.append(address)
            else:
                why = "private or loopback address, not dialled"
                attempts.add(f"{host} [{address}]: {why}", HostFailed(CONNECT, why))
        return allowed

    async def _deliver(self, connection: Connection, t: Transaction, attempts: Attempts) -> Sent:
        """One transaction on ``connection``; kept for the next message if it ended cleanly
        (accepted, or every recipient refused), else closed."""
        evidence = connection.evidence
        log = self._logger(connection.candidate, evidence.address)
        kept = False
        try:
            sent = await self._transact(connection.client, t, evidence, attempts)
            self._cache.give_back(connection)
            kept = True
        except DeliveryFailed as exc:
            log.info("mx-attempt", outcome=exc.outcome, stage=exc.stage, reply=exc.code)
            raise
        finally:
            if not kept:
                await quit_politely(connection.client)
        # One line per host tried; never the subject or body (they are never in scope here).
        log.info(
            "mx-attempt",
            outcome="delivered" if sent.reply is not None else "refused",
            tls=evidence.tls_version or "none",
            auth=evidence.authenticated.value,
            accepted=len(sent.accepted),
            refused=len(sent.refused),
            reused=connection.reused,
        )
        return sent

    async def _open(self, candidate: Candidate, address: str) -> Connection:
        """A connection that meets ``candidate``'s requirement, after the EHLO that follows
        STARTTLS, with the evidence of how it was made."""
        try:
            client, evidence = await self._open_once(candidate, address, plaintext=False)
        except _Plaintext:
            # RFC 7435 §3: opportunistic TLS that fails to negotiate falls back to plaintext
            # on a new connection, as Postfix does; never for a host whose TLS is mandatory.
            client, evidence = await self._open_once(candidate, address, plaintext=True)
        return self._cache.open(client, candidate, evidence)

    async def _open_once(
        self, candidate: Candidate, address: str, plaintext: bool
    ) -> tuple[aiosmtplib.SMTP, Evidence]:
        s = self._settings
        client = aiosmtplib.SMTP(
            hostname=address,
            port=s.mx_port,
            timeout=s.timeout,
            local_hostname=self._local_hostname,
            use_tls=False,
            start_tls=False,
        )
        host = candidate.host
        plain = Evidence(host, address, s.mx_port)
        try:
            await client.connect()
            await client.ehlo()
        except aiosmtplib.SMTPResponseException as exc:
            client.close()
            reply = Reply(exc.code, exc.message)
            raise HostFailed(SMTP, f"greeting: {reply}", reply, "connect") from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            client.close()
            raise lost_connection(exc, "connect") from exc
        try:
            if plaintext:
                return client, plain
            if not client.supports_extension("starttls"):
                if candidate.requirement.mandatory:
                    # RFC 7672 §2.2 / RFC 8461 §5: no fallback, that is the downgrade attack.
                    raise HostFailed(TLS, "STARTTLS not offered")
                return client, plain
            return client, await self._start_tls(client, candidate, address)
        except BaseException:
            client.close()
            raise

    async def _start_tls(
        self, client: aiosmtplib.SMTP, candidate: Candidate, address: str
    ) -> Evidence:
        host, requirement = candidate.host, candidate.requirement
        context = self._webpki if requirement is Requirement.MTA_STS else peer.dane_context()
        try:
            # SNI is the MX host: the TLSA base domain (RFC 7672 §8.1) or the name the
            # WebPKI certificate must carry (RFC 8461 §4.2).
            await client.starttls(server_hostname=host, tls_context=context)
        except aiosmtplib.SMTPResponseException as exc:
            if not requirement.mandatory:
                raise _Plaintext from exc
            raise HostFailed(TLS, f"STARTTLS refused: {exc.code} {exc.message}") from exc
        except (ssl.SSLError, aiosmtplib.SMTPException, ConnectionError) as exc:
            if not requirement.mandatory:
                raise _Plaintext from exc
            raise HostFailed(TLS, peer.handshake_failure(exc, host)) from exc
        tls = client.get_transport_info("ssl_object")
        auth = _authenticate(candidate, tls)
        try:
            await client.ehlo()  # RFC 3207 §4.2: what we knew before TLS is forgotten
        except aiosmtplib.SMTPResponseException as exc:
            reply = Reply(exc.code, exc.message)
            raise HostFailed(SMTP, f"EHLO after STARTTLS: {reply}", reply, "connect") from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise lost_connection(exc, "EHLO after STARTTLS") from exc
        cipher = tls.cipher() if tls is not None else None
        return Evidence(
            host,
            address,
            self._settings.mx_port,
            tls_version=(tls.version() if tls is not None else "") or "",
            cipher=cipher[0] if cipher else "",
            authenticated=auth,
        )

    async def _transact(
        self, client: aiosmtplib.SMTP, t: Transaction, evidence: Evidence, attempts: Attempts
    ) -> Sent:
        where = f"{evidence.host} [{evidence.address}]"
        options = supported(t.mail_options, client)
        if t.requiretls:
            # RFC 8689 §4.1: only to an authenticated peer that itself offers REQUIRETLS.
            if evidence.authenticated is PeerAuth.NONE:
                raise HostFailed(REQUIRETLS, "peer not authenticated, REQUIRETLS cannot hold")
            if not client.supports_extension("requiretls"):
                raise HostFailed(REQUIRETLS, "REQUIRETLS not advertised")
            options.append("REQUIRETLS")
        encoding = "utf-8" if t.smtputf8 else "ascii"
        if pipelining.offered(client):
            return await self._pipelined(client, t, options, evidence, attempts)
        try:
            await client.mail(t.sender, options=options, encoding=encoding)
        except aiosmtplib.SMTPResponseException as exc:
            next_host_or_fail(Reply(exc.code, exc.message), "MAIL", where, attempts)
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise lost_connection(exc, "MAIL") from exc
        sent = Sent(evidence=evidence, skipped=tuple(attempts.lines))
        try:
            await send_recipients(client, t, sent)
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise lost_connection(exc, "RCPT") from exc
        if not sent.accepted:
            return nobody_accepted(sent)
        return await self._data(client, t, sent, where, attempts)

    async def _pipelined(
        self,
        client: aiosmtplib.SMTP,
        t: Transaction,
        options: list[str],
        evidence: Evidence,
        attempts: Attempts,
    ) -> Sent:
        """``_transact`` in one RFC 2920 group: the same results, stages and next-host rules
        for each reply and for a connection lost before it."""
        where = f"{evidence.host} [{evidence.address}]"
        encoding = "utf-8" if t.smtputf8 else "ascii"
        mail = pipelining.command(b"MAIL FROM:", t.sender, options, encoding)
        rcpts = [
            pipelining.command(b"RCPT TO:", r.address, supported(r.options, client), encoding)
            for r in t.recipients
        ]
        exchange = await pipelining.transact(client, mail, rcpts, t.data, t.prefix)
        lost = exchange.lost
        if exchange.mail is None:
            assert lost is not None
            raise lost_connection(lost, "MAIL") from lost
        if exchange.mail.code != 250:
            next_host_or_fail(
                Reply(exchange.mail.code, exchange.mail.message), "MAIL", where, attempts
            )
        sent = Sent(evidence=evidence, skipped=tuple(attempts.lines))
        if not pipelining.record_recipients(exchange, t, sent):
            assert lost is not None
            raise lost_connection(lost, "RCPT") from lost
        if not sent.accepted:
            return nobody_accepted(sent)
        if lost is not None:
            raise lost_in_data(lost, where, attempts) from lost
        refusal = exchange.data_refusal()
        if refusal is not None:
            next_host_or_fail(Reply(refusal.code, refusal.message), "DATA", where, attempts)
        assert exchange.end is not None
        return self._delivered(sent, Reply(exchange.end.code, exchange.end.message))

    async def _data(
        self, client: aiosmtplib.SMTP, t: Transaction, sent: Sent, where: str, attempts: Attempts
    ) -> Sent:
        try:
            response = await send_data(client, t.data, t.prefix)
        except aiosmtplib.SMTPResponseException as exc:
            next_host_or_fail(Reply(exc.code, exc.message), "DATA", where, attempts)
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise lost_in_data(exc, where, attempts) from exc
        return self._delivered(sent, Reply(response.code, response.message))

    def _delivered(self, sent: Sent, reply: Reply) -> Sent:
        sent.reply = reply
        assert sent.evidence is not None
        sent.evidence = dataclasses.replace(sent.evidence, at=self._clock())
        return sent


class _Plaintext(Exception):
    """Opportunistic TLS did not come up: start again without it."""


def _authenticate(candidate: Candidate, tls: Any) -> PeerAuth:
    if candidate.requirement is Requirement.MTA_STS:
        return PeerAuth.MTA_STS  # OpenSSL verified chain, dates and name in the handshake
    if candidate.requirement is not Requirement.DANE:
        return PeerAuth.NONE
    chain = peer.peer_chain(tls)
    names = (dane.tlsa_name(candidate.host), candidate.host)
    auth = peer.dane_match(candidate.tlsa, chain, names)
    if auth is None:
        raise HostFailed(TLS, "certificate does not match the TLSA records")
    return auth


def _one_domain(t: Transaction) -> str:
    try:
        domains = {address_domain(r.address) for r in t.recipients}
    except AddressError as exc:
        raise ValueError(f"not a deliverable recipient: {exc}") from exc
    if len(domains) != 1:
        raise ValueError(f"one transaction, one recipient domain; got {sorted(domains)}")
    return domains.pop()


def _public(address: str) -> bool:
    """Not loopback, private, link-local, multicast or reserved: the SSRF guard for MX hosts,
    as for policy hosts (TRANSPORT-SECURITY.md, "Delivery")."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return ip.is_global and not ip.is_multicast
