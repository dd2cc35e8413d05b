"""The smarthost transport: the organisation's upstream relay over aiosmtplib, connections
kept open and reused, one result per recipient.

The result keeps what the upstream said apart: recipients accepted, recipients refused (with
the code, so 4xx and 5xx stay distinct), or the whole transaction failed (connection, MAIL,
DATA), raised as ``DeliveryFailed`` with its ``Outcome``. Nothing is retried after DATA has
been sent: a duplicate delivery is worse than a 4xx the sending MTA retries.

With ``[relay] tls`` the smarthost's certificate must verify (system roots plus ``[relay]
ca_file``, TLS 1.2 or later) for ``[relay] tls_name``, or else ``[relay] host`` (an IP address
is checked against the certificate's IP subjectAltName). A certificate that fails is a 4xx: the
sending MTA keeps the message and retries. Flagged mail carries RFC 8689 REQUIRETLS per
``[relay] requiretls``; mail whose client asked for REQUIRETLS goes only to a smarthost that
offers it over verified TLS, else 550 5.7.30. What carried each transaction comes back as
``Sent.evidence``.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Sequence
from pathlib import Path

import aiosmtplib

from gateway import logs
from gateway.config.settings import RelaySettings
from gateway.config.values import RelayTls, RequireTlsMode
from gateway.delivery import pipelining
from gateway.delivery.dataphase import send_data
from gateway.delivery.transport import (
    Evidence,
    Outcome,
    PeerAuth,
    Reply,
    Sent,
    Transaction,
    failure,
)
from gateway.errors import DeliveryFailed

# Options we pass on only when the upstream advertises the extension they belong to.
_EXTENSION_OF = {"RET": "dsn", "ENVID": "dsn", "NOTIFY": "dsn", "ORCPT": "dsn"}
_EXTENSION_OF |= {"BODY": "8bitmime", "SMTPUTF8": "smtputf8"}


# RFC 8689 §4.2.1 (and the 5.7.30 code its IANA section registers): a message whose sender
# asked for REQUIRETLS is never handed to a next hop that does not offer it over verified TLS;
# retrying cannot help, so the sender hears at once.
REQUIRETLS_REFUSED = Reply(550, "5.7.30 REQUIRETLS support required")
# [relay] requiretls = "require": flagged mail waits (the sending MTA retries) until the
# smarthost offers REQUIRETLS over verified TLS.
REQUIRETLS_WANTED = Reply(
    451, "4.7.0 the upstream does not offer REQUIRETLS over verified TLS (requiretls = require)"
)


def relay_tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """The client context for the smarthost: the system's roots plus ``ca_file``, the peer's
    certificate required and its name checked (subjectAltName only, RFC 6125 §6.4.4), TLS 1.2
    or later (RFC 8996 retires 1.0 and 1.1)."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if ca_file is not None:
        context.load_verify_locations(cafile=str(ca_file))
    context.verify_mode = ssl.CERT_REQUIRED
    context.check_hostname = True
    context.hostname_checks_common_name = False
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def supported(options: Sequence[str], client: aiosmtplib.SMTP) -> list[str]:
    kept = []
    for option in options:
        name = option.split("=", 1)[0].upper()
        extension = _EXTENSION_OF.get(name)
        if extension is not None and client.supports_extension(extension):
            kept.append(option)
    return kept


async def send_recipients(client: aiosmtplib.SMTP, t: Transaction, sent: Sent) -> None:
    """RCPT for each recipient, in order; refusals (4xx and 5xx) are kept per recipient in
    ``sent.refused`` (RFC 5321 §3.3), anything else raises."""
    encoding = "utf-8" if t.smtputf8 else "ascii"
    for recipient in t.recipients:
        try:
            await client.rcpt(
                recipient.address,
                options=supported(recipient.options, client),
                encoding=encoding,
            )
            sent.accepted.append(recipient.address)
        except aiosmtplib.SMTPRecipientRefused as exc:
            sent.refused[recipient.address] = Reply(exc.code, exc.message)


class Smarthost:
    """A ``Transport`` through the configured upstream ([relay] host and port)."""

    def __init__(
        self,
        settings: RelaySettings,
        local_hostname: str,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self._settings = settings
        self._local_hostname = local_hostname
        self._tls_context = tls_context
        # The name the certificate must carry, and the host the evidence names.
        self._name = settings.tls_name or settings.host
        self._idle: list[aiosmtplib.SMTP] = []
        self._slots = asyncio.Semaphore(settings.max_connections)
        self._log = logs.get("gateway.delivery")

    async def send(self, transaction: Transaction) -> Sent:
        async with self._slots:
            client, options, reused = await self._ready(transaction)
            try:
                result, client = await self._transact(client, transaction, options, reused)
            except BaseException:
                await _discard(client)
                raise
            if client.is_connected:
                self._idle.append(client)
            return result

    async def _ready(self, t: Transaction) -> tuple[aiosmtplib.SMTP, list[str], bool]:
        """A connection that may carry ``t``, with its MAIL parameters."""
        client, reused = await self._checkout()
        try:
            return client, self._mail_options(client, t), reused
        except DeliveryFailed:
            if not reused:
                self._idle.append(client)  # nothing was said to it: the connection is good
                raise
        # A pooled connection's extensions are those of its EHLO, maybe long ago: the
        # smarthost may offer REQUIRETLS now. Ask a fresh connection before refusing.
        await _discard(client)
        client = await self._connect()
        try:
            return client, self._mail_options(client, t), False
        except DeliveryFailed:
            self._idle.append(client)
            raise

    async def _checkout(self) -> tuple[aiosmtplib.SMTP, bool]:
        while self._idle:
            client = self._idle.pop()
            if client.is_connected:
                return client, True
        return await self._connect(), False

    async def _connect(self) -> aiosmtplib.SMTP:
        s = self._settings
        try:
            sock = await self._dial()
        except OSError as exc:
            reply = Reply(421, f"cannot reach the upstream: {exc}")
            raise failure(reply, "connect", _no_answer(exc)) from exc
        # aiosmtplib takes the TLS server name (SNI and the name checked) from `hostname`
        # only; with our own socket, that name can be [relay] tls_name, not the host dialled.
        client = aiosmtplib.SMTP(
            hostname=self._name,
            sock=sock,
            timeout=s.timeout,
            local_hostname=self._local_hostname,
            use_tls=s.tls is RelayTls.IMPLICIT,
            start_tls=s.tls is RelayTls.STARTTLS,
            tls_context=self._tls_context,
            username=s.username or None,
            password=(s.password.reveal() or None) if s.username else None,
        )
        try:
            await client.connect()
            if client.last_ehlo_response is None:
                # Without STARTTLS or AUTH, connect() sends no EHLO, and we must know the
                # upstream's extensions before MAIL to pass on DSN, 8BITMIME and SMTPUTF8.
                await client.ehlo()
        except BaseException as exc:
            client.close()
            sock.close()
            translated = self._connect_failure(exc)
            if translated is exc:
                raise
            raise translated from exc
        return client

    async def _dial(self) -> socket.socket:
        s = self._settings
        # create_connection tries each address of the host in turn, within the timeout.
        address = (s.host, s.port)
        return await asyncio.to_thread(socket.create_connection, address, s.timeout)

    def _connect_failure(self, exc: BaseException) -> BaseException:
        unverified = _certificate_error(exc)
        if unverified is not None:
            # The sending MTA keeps the message and retries; the operator reads why here.
            problem = unverified.verify_message or str(unverified)
            self._log.warning(
                "upstream certificate not verified",
                host=self._settings.host,
                name=self._name,
                problem=problem,
            )
            reply = Reply(454, f"upstream certificate not verified for {self._name}: {problem}")
            return failure(reply, "connect", Outcome.DEFERRED)
        if isinstance(exc, aiosmtplib.SMTPResponseException):
            return failure(Reply(exc.code, exc.message), "connect")
        if isinstance(exc, (aiosmtplib.SMTPException, OSError)):
            reply = Reply(421, f"cannot reach the upstream: {exc}")
            return failure(reply, "connect", _no_answer(exc))
        return exc

    def _mail_options(self, client: aiosmtplib.SMTP, t: Transaction) -> list[str]:
        """The MAIL parameters, REQUIRETLS among them when RFC 8689 and [relay] requiretls
        say so; raises DeliveryFailed when the transaction must not go to this upstream."""
        options = supported(t.mail_options, client)
        offered = _verified(client) is PeerAuth.SMARTHOST and client.supports_extension(
            "requiretls"
        )
        mode = self._settings.requiretls
        if t.requiretls:
            if not offered:
                raise failure(REQUIRETLS_REFUSED, "MAIL")
            return [*options, "REQUIRETLS"]
        if not t.flagged or mode is RequireTlsMode.OFF:
            return options
        if offered:
            return [*options, "REQUIRETLS"]
        if mode is RequireTlsMode.REQUIRE:
            raise failure(REQUIRETLS_WANTED, "MAIL", Outcome.DEFERRED)
        return options

    async def _transact(
        self, client: aiosmtplib.SMTP, t: Transaction, options: list[str], reused: bool
    ) -> tuple[Sent, aiosmtplib.SMTP]:
        if pipelining.offered(client):
            return await self._pipelined(client, t, options, reused)
        encoding = "utf-8" if t.smtputf8 else "ascii"
        try:
            await client.mail(t.sender, options=options, encoding=encoding)
        except aiosmtplib.SMTPServerDisconnected as exc:
            if not reused:
                reply = Reply(421, "upstream closed the connection")
                raise failure(reply, "MAIL", Outcome.UNREACHABLE) from exc
            return await self._afresh(client, t)
        except aiosmtplib.SMTPResponseException as exc:
            await _reset(client)
            raise failure(Reply(exc.code, exc.message), "MAIL") from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise failure(Reply(421, f"upstream failed: {exc}"), "MAIL", _no_answer(exc)) from exc

        result = Sent(evidence=self._evidence(client))
        try:
            await send_recipients(client, t, result)
            if not result.accepted:
                await _reset(client)
                return result, client
            response = await send_data(client, t.data, t.prefix)
            result.reply = Reply(response.code, response.message)
            result.evidence = self._evidence(client, at=time.time())
        except aiosmtplib.SMTPResponseException as exc:
            await _reset(client)
            raise failure(Reply(exc.code, exc.message), "DATA") from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            # Timeout or disconnect during the transaction: the upstream may or may not have
            # the message; the sending MTA retries, and the relay journal stops a second copy
            # only if we learned of the first. RFC 5321 §6.1 accepts that rare duplicate.
            raise failure(Reply(451, f"upstream failed: {exc}"), "DATA", _no_answer(exc)) from exc
        return result, client

    async def _afresh(
        self, client: aiosmtplib.SMTP, t: Transaction
    ) -> tuple[Sent, aiosmtplib.SMTP]:
        # An idle connection the upstream closed: nothing was sent yet, so start afresh.
        await _discard(client)
        fresh = await self._connect()
        try:
            options = self._mail_options(fresh, t)
        except DeliveryFailed:
            self._idle.append(fresh)
            raise
        return await self._transact(fresh, t, options, reused=False)

    async def _pipelined(
        self, client: aiosmtplib.SMTP, t: Transaction, options: list[str], reused: bool
    ) -> tuple[Sent, aiosmtplib.SMTP]:
        """``_transact`` in one group (RFC 2920): the same results, stages and outcomes for
        each reply and for a connection lost before it."""
        encoding = "utf-8" if t.smtputf8 else "ascii"
        mail = pipelining.command(b"MAIL FROM:", t.sender, options, encoding)
        rcpts = [
            pipelining.command(b"RCPT TO:", r.address, supported(r.options, client), encoding)
            for r in t.recipients
        ]
        result = Sent(evidence=self._evidence(client))
        exchange = await pipelining.transact(client, mail, rcpts, t.data, t.prefix)
        lost = exchange.lost
        if exchange.mail is None:
            assert lost is not None
            if not isinstance(lost, aiosmtplib.SMTPServerDisconnected):
                reply = Reply(421, f"upstream failed: {lost}")
                raise failure(reply, "MAIL", _no_answer(lost)) from lost
            if not reused:
                reply = Reply(421, "upstream closed the connection")
                raise failure(reply, "MAIL", Outcome.UNREACHABLE) from lost
            return await self._afresh(client, t)  # the text was not sent: nothing delivered
        if exchange.mail.code != 250:
            await _reset(client)
            code, message = exchange.mail
            refused = aiosmtplib.SMTPSenderRefused(code, message, t.sender)
            raise failure(Reply(code, message), "MAIL") from refused
        if pipelining.record_recipients(exchange, t, result) and not result.accepted:
            await _reset(client)
            return result, client
        if lost is not None:
            # As in _transact: the upstream may or may not have the message.
            reply = Reply(451, f"upstream failed: {lost}")
            raise failure(reply, "DATA", _no_answer(lost)) from lost
        refusal = exchange.data_refusal()
        if refusal is not None:
            await _reset(client)
            code, message = refusal
            raise failure(Reply(code, message), "DATA") from aiosmtplib.SMTPDataError(code, message)
        end = exchange.end
        assert end is not None
        result.reply = Reply(end.code, end.message)
        result.evidence = self._evidence(client, at=time.time())
        return result, client

    def _evidence(self, client: aiosmtplib.SMTP, at: float = 0.0) -> Evidence:
        peer = client.get_transport_info("peername") or ("", self._settings.port)
        tls = client.get_transport_info("ssl_object")
        version, cipher = "", ""
        if isinstance(tls, ssl.SSLObject | ssl.SSLSocket):
            version = tls.version() or ""
            cipher = (tls.cipher() or ("",))[0]
        return Evidence(
            host=self._name,
            address=str(peer[0]),
            port=int(peer[1]),
            tls_version=version,
            cipher=cipher,
            authenticated=_verified(client),
            at=at,
        )

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for client in idle:
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError):
                client.close()


def _no_answer(exc: BaseException) -> Outcome:
    # aiosmtplib's timeouts are TimeoutErrors; anything else without a reply is a lost
    # (or never made) connection.
    return Outcome.TIMED_OUT if isinstance(exc, TimeoutError) else Outcome.UNREACHABLE


async def _reset(client: aiosmtplib.SMTP) -> None:
    try:
        await client.rset()
    except (aiosmtplib.SMTPException, OSError):
        client.close()


async def _discard(client: aiosmtplib.SMTP) -> None:
    if client.is_connected:
        client.close()


def _verified(client: aiosmtplib.SMTP) -> PeerAuth:
    """SMARTHOST when the connection is TLS whose context required the peer's certificate
    and checked its name; NONE otherwise (plaintext, or a context that verifies nothing)."""
    tls = client.get_transport_info("ssl_object")
    if not isinstance(tls, ssl.SSLObject | ssl.SSLSocket):
        return PeerAuth.NONE
    context = tls.context
    if context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname:
        return PeerAuth.SMARTHOST
    return PeerAuth.NONE


def _certificate_error(exc: BaseException | None) -> ssl.SSLCertVerificationError | None:
    # aiosmtplib wraps what the handshake raised (SMTPConnectError, SMTPServerDisconnected):
    # look down the chain of causes.
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, ssl.SSLCertVerificationError):
            return exc
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None
