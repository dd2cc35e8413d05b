"""The smarthost transport: the organisation's upstream relay over aiosmtplib, connections
kept open and reused, one result per recipient.

The result keeps what the upstream said apart: recipients accepted, recipients refused (with
the code, so 4xx and 5xx stay distinct), or the whole transaction failed (connection, MAIL,
DATA), raised as ``DeliveryFailed`` with its ``Outcome``. Nothing is retried after DATA has
been sent: a duplicate delivery is worse than a 4xx the sending MTA retries.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence

import aiosmtplib

from gateway.config.settings import RelaySettings
from gateway.config.values import RelayTls
from gateway.delivery.transport import Outcome, Reply, Sent, Transaction, failure

# Options we pass on only when the upstream advertises the extension they belong to.
_EXTENSION_OF = {"RET": "dsn", "ENVID": "dsn", "NOTIFY": "dsn", "ORCPT": "dsn"}
_EXTENSION_OF |= {"BODY": "8bitmime", "SMTPUTF8": "smtputf8"}


def supported(options: Sequence[str], client: aiosmtplib.SMTP) -> list[str]:
    kept = []
    for option in options:
        name = option.split("=", 1)[0].upper()
        extension = _EXTENSION_OF.get(name)
        if extension is not None and client.supports_extension(extension):
            kept.append(option)
    return kept


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
        self._idle: list[aiosmtplib.SMTP] = []
        self._slots = asyncio.Semaphore(settings.max_connections)

    async def send(self, transaction: Transaction) -> Sent:
        async with self._slots:
            client, reused = await self._checkout()
            try:
                result, client = await self._transact(client, transaction, reused)
            except BaseException:
                await _discard(client)
                raise
            if client.is_connected:
                self._idle.append(client)
            return result

    async def _checkout(self) -> tuple[aiosmtplib.SMTP, bool]:
        while self._idle:
            client = self._idle.pop()
            if client.is_connected:
                return client, True
        return await self._connect(), False

    async def _connect(self) -> aiosmtplib.SMTP:
        s = self._settings
        client = aiosmtplib.SMTP(
            hostname=s.host,
            port=s.port,
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
        except aiosmtplib.SMTPResponseException as exc:
            raise failure(Reply(exc.code, exc.message), "connect") from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            reply = Reply(421, f"cannot reach the upstream: {exc}")
            raise failure(reply, "connect", _no_answer(exc)) from exc
        return client

    async def _transact(
        self, client: aiosmtplib.SMTP, t: Transaction, reused: bool
    ) -> tuple[Sent, aiosmtplib.SMTP]:
        encoding = "utf-8" if t.smtputf8 else "ascii"
        try:
            await client.mail(
                t.sender, options=supported(t.mail_options, client), encoding=encoding
            )
        except aiosmtplib.SMTPServerDisconnected as exc:
            if not reused:
                reply = Reply(421, "upstream closed the connection")
                raise failure(reply, "MAIL", Outcome.UNREACHABLE) from exc
            # An idle connection the upstream closed: nothing was sent yet, so start afresh.
            await _discard(client)
            return await self._transact(await self._connect(), t, reused=False)
        except aiosmtplib.SMTPResponseException as exc:
            await _reset(client)
            raise failure(Reply(exc.code, exc.message), "MAIL") from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise failure(Reply(421, f"upstream failed: {exc}"), "MAIL", _no_answer(exc)) from exc

        result = Sent()
        try:
            for recipient in t.recipients:
                try:
                    await client.rcpt(
                        recipient.address,
                        options=supported(recipient.options, client),
                        encoding=encoding,
                    )
                    result.accepted.append(recipient.address)
                except aiosmtplib.SMTPRecipientRefused as exc:
                    result.refused[recipient.address] = Reply(exc.code, exc.message)
            if not result.accepted:
                await _reset(client)
                return result, client
            response = await client.data(t.data)
            result.reply = Reply(response.code, response.message)
        except aiosmtplib.SMTPResponseException as exc:
            await _reset(client)
            raise failure(Reply(exc.code, exc.message), "DATA") from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            # Timeout or disconnect during the transaction: the upstream may or may not have
            # the message; the sending MTA retries, and the relay journal stops a second copy
            # only if we learned of the first. RFC 5321 §6.1 accepts that rare duplicate.
            raise failure(Reply(451, f"upstream failed: {exc}"), "DATA", _no_answer(exc)) from exc
        return result, client

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
