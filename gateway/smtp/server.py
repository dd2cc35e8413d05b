"""The SMTP face of the gateway (aiosmtpd, on the main event loop).

Limits and identity: who is trusted and when TLS is required (``admission``: trusted networks,
client certificates, SMTP AUTH by ``auth``; whom those two may send as, ``senders``), the
connection cap (421), SIZE (552), the recipient cap (452). TLS (``tls``): STARTTLS (RFC 3207)
or implicit TLS (RFC 8314); AUTH and REQUIRETLS (RFC 8689) are offered only inside it.
Envelope addresses are checked by aiosmtpd's hooks (``handler``), with ``paths`` giving the
reply each refusal needs, and the filter answers the end of DATA there; DATA is read by
``data``, which takes lines of any length. A pipelined group's replies go out in one write and
one idle timer serves the session (``pipelining``).
DSN parameters and REQUIRETLS, which stock aiosmtpd refuses with 555, are taken off the
command by ``params`` with their case kept, checked, and passed on. XFORWARD (``xforward``)
lets the organisation's MTA name the client it had the message from.
Any unexpected error becomes 451 4.3.0 with no internals in the reply.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from aiosmtpd.smtp import SMTP, Envelope, TLSSetupException, syntax

from gateway import logs
from gateway.config.settings import SmtpSettings
from gateway.smtp import auth, xforward
from gateway.smtp.admission import Admission
from gateway.smtp.budget import BUSY, BUSY_CLOSING, DataBudget, Meter
from gateway.smtp.data import read_data
from gateway.smtp.params import DSN_MAIL, DSN_RCPT, path_end, split_params, take_flag
from gateway.smtp.pipelining import PipelinedSMTP
from gateway.smtp.reply import SmtpReply
from gateway.smtp.tls import TlsFacts, names_match, tls_facts

if TYPE_CHECKING:
    from gateway.smtp.handler import Handler

IDENT = "Safeguarding Mail Gateway"

# The replies of this face (aiosmtpd's hooks take them as strings: str(reply)); the ones about
# who may send are in admission, those of AUTH in auth.
TOO_MUCH_DATA = SmtpReply(552, "5.3.4", "Message too big for system")  # RFC 3463 §3.4
TLS_ACTIVE = SmtpReply(503, "5.5.1", "TLS already active")
# RFC 8689 §4 and RFC 5248: REQUIRETLS is a promise about TLS; over plaintext it is refused.
REQUIRETLS_NEEDS_TLS = SmtpReply(530, "5.7.10", "REQUIRETLS needs TLS: issue STARTTLS first")
AUTH_IN_TRANSACTION = SmtpReply(503, "5.5.1", "AUTH not permitted during a mail transaction")


class DsnEnvelope(Envelope):
    """aiosmtpd's envelope plus the DSN parameters, per recipient in RCPT order, the
    REQUIRETLS flag (RFC 8689 §4), and what XFORWARD said of the client (None: nothing)."""

    def __init__(self) -> None:
        super().__init__()
        self.dsn_mail: list[str] = []
        self.dsn_rcpt: list[tuple[str, ...]] = []
        self.requiretls = False
        self.forwarded: xforward.Forwarded | None = None


class GatewaySMTP(PipelinedSMTP):
    """One session. ``tls_context`` offers STARTTLS; ``implicit`` says the listener spoke TLS
    from the first byte (RFC 8314). Trust, TLS facts and the AUTH account belong to the
    connection, not to aiosmtpd's Session, which STARTTLS replaces (RFC 3207 §4.2)."""

    def __init__(
        self,
        handler: Handler,
        admission: Admission,
        budget: DataBudget | None = None,
        implicit: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(handler, ident=IDENT, **kwargs)
        self._admission = admission
        # None: a budget of this session's own, at the defaults (tests of the SMTP face).
        self._budget = budget if budget is not None else DataBudget.of(SmtpSettings())
        self._meter: Meter | None = None
        self._implicit = implicit
        self.tls: TlsFacts | None = None
        self.trusted_as = ""  # "network", "certificate NAME" or "account NAME"; "": untrusted
        self.auth_user = ""
        self._log = logs.get("gateway.smtp")

    @property
    def secure(self) -> bool:
        return self.tls is not None

    @property
    def xforward_permitted(self) -> bool:
        """Only a client trusted by its network may name its own clients (``xforward``)."""
        return self.trusted_as == "network"

    def _create_envelope(self) -> DsnEnvelope:
        return DsnEnvelope()

    def _dsn_envelope(self) -> DsnEnvelope:
        assert isinstance(self.envelope, DsnEnvelope)
        return self.envelope

    async def _handle_client(self) -> None:
        assert self.session is not None
        assert self.transport is not None
        refusal = self._admission.refusal(self.session.peer)
        if refusal is not None:
            self._log.info("connection refused", peer=str(self.session.peer), reply=str(refusal))
            await self.push(str(refusal))
            self.transport.close()
            return
        if self._admission.trusted(self.session.peer):
            self.trusted_as = "network"
        if self._implicit:
            self._tls_started()
        self._admission.active += 1
        try:
            await super()._handle_client()
        finally:
            self._admission.active -= 1

    @syntax("STARTTLS", when="tls_context")
    async def smtp_STARTTLS(self, arg: str | None) -> None:
        if self.secure:
            await self.push(str(TLS_ACTIVE))
            return
        # aiosmtpd's own: it answers 220, waits for the handshake, and (1.4.6) throws away
        # whatever the client pipelined after STARTTLS in plaintext (RFC 3207 §4.2; the
        # CVE-2024-34083 class): only commands sent inside TLS are read.
        try:
            await super().smtp_STARTTLS(arg)
        except TLSSetupException as exc:
            # The client's to fix (an old TLS version, a certificate that does not verify):
            # no reply can reach it now, so the session ends.
            assert self.session is not None
            problem = str(exc.__cause__ or exc)
            self._log.info("tls handshake failed", peer=str(self.session.peer), problem=problem)
            if self.transport is not None:
                self.transport.close()
            return
        if self._tls_protocol is not None:
            self._tls_started()

    def _tls_started(self) -> None:
        assert self.session is not None
        self.tls = tls_facts(self.transport)
        if self.tls is None:
            return
        named = names_match(self.tls.client_names, self._admission.identity.trusted_client_names)
        if named and not self.trusted_as:
            self.trusted_as = f"certificate {named}"
        self._log.info(
            "tls started",
            peer=str(self.session.peer),
            version=self.tls.version,
            cipher=self.tls.cipher,
            client_certificate=list(self.tls.client_names) or None,
            trusted=self.trusted_as or None,
        )

    def extensions(self, responses: list[str]) -> list[str]:
        """The EHLO reply: AUTH and REQUIRETLS only inside TLS (RFC 4954 §4, RFC 8689 §4),
        XFORWARD only to trusted networks."""
        lines = [line for line in responses if not line.startswith("250-AUTH")]
        extra = ["250-" + xforward.EHLO_KEYWORD] if self.xforward_permitted else []
        if self.secure and self._admission.identity.auth is not None:
            extra.append("250-AUTH " + " ".join(auth.MECHANISMS))
        if self.secure:
            extra.append("250-REQUIRETLS")
        return [*lines[:-1], *extra, *lines[-1:]]

    @syntax("AUTH <mechanism>")
    async def smtp_AUTH(self, arg: str | None) -> None:
        assert self.session is not None
        if await self.check_helo_needed("EHLO"):
            return
        reply = self._auth_refusal(arg)
        if reply is None:
            reply = await self._check_credentials((arg or "").split())
        if reply is not None:
            await self.push(str(reply))

    def _auth_refusal(self, arg: str | None) -> SmtpReply | None:
        assert self.session is not None
        checker = self._admission.identity.auth
        if checker is None or not self.session.extended_smtp:
            return auth.AUTH_UNAVAILABLE  # never advertised
        if not self.secure:
            return auth.ENCRYPTION_REQUIRED
        if self.auth_user:
            return auth.ALREADY_AUTHENTICATED
        if self._dsn_envelope().mail_from is not None:
            return AUTH_IN_TRANSACTION
        words = (arg or "").split()
        if not 1 <= len(words) <= 2:
            return auth.AUTH_SYNTAX
        if words[0].upper() not in auth.MECHANISMS:
            return auth.UNKNOWN_MECHANISM
        return None

    async def _check_credentials(self, words: list[str]) -> SmtpReply | None:
        assert self.session is not None
        assert self.session.peer is not None
        checker = self._admission.identity.auth
        assert checker is not None
        initial = words[1] if len(words) == 2 else None
        given = await auth.read_credentials(self, words[0].upper(), initial)
        if isinstance(given, SmtpReply):
            return given
        name, reply = await checker.check(given, str(self.session.peer[0]))
        if name:
            self.auth_user = name
            self.session.authenticated = True
            self.trusted_as = self.trusted_as or f"account {name}"
        return reply

    @syntax("XFORWARD attribute=value ...", when="xforward_permitted")
    async def smtp_XFORWARD(self, arg: str | None) -> None:
        if await self.check_helo_needed("EHLO"):
            return
        envelope = self._dsn_envelope()
        reply, envelope.forwarded = xforward.command(
            arg,
            permitted=self.xforward_permitted,
            in_transaction=envelope.mail_from is not None,
            current=envelope.forwarded,
        )
        if reply.code != 250:
            assert self.session is not None
            self._log.info("xforward refused", peer=str(self.session.peer), reply=str(reply))
        await self.push(str(reply))

    async def smtp_MAIL(self, arg: str | None) -> None:
        assert self.session is not None
        if arg is None or not self.session.host_name:
            await super().smtp_MAIL(arg)
            return
        rest, requiretls, flag_error = take_flag(arg, "REQUIRETLS")
        rest, dsn, dsn_error = split_params(rest, DSN_MAIL)
        peer = self.session.peer
        refusal = (
            self._admission.mail_refusal(peer, self.secure, bool(self.trusted_as))
            or flag_error
            or dsn_error
        )
        if refusal is None and requiretls and not self.secure:
            refusal = REQUIRETLS_NEEDS_TLS
        if refusal is not None:
            self._log.info("mail refused", peer=str(peer), reply=str(refusal))
            await self.push(str(refusal))
            return
        envelope = self._dsn_envelope()
        before = envelope.mail_from
        await super().smtp_MAIL(rest)
        if envelope.mail_from and not before:
            envelope.dsn_mail = dsn
            envelope.requiretls = requiretls

    async def smtp_RCPT(self, arg: str | None) -> None:
        if arg is None:
            await super().smtp_RCPT(arg)
            return
        rest, dsn, error = split_params(arg, DSN_RCPT)
        if error is not None:
            await self.push(str(error))
            return
        count = len(self._dsn_envelope().rcpt_tos)
        await super().smtp_RCPT(rest)
        if len(self._dsn_envelope().rcpt_tos) > count:
            self._dsn_envelope().dsn_rcpt.append(tuple(dsn))

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """The path of a MAIL/RCPT argument as the client wrote it, and the rest.

        aiosmtpd parses it as a header address (RFC 5322), which takes comments and folds
        ``"a"b@x`` into ``ab@x``; the handler checks the SMTP syntax on the text as sent."""
        text = arg.lstrip()
        if not text.startswith("<"):
            path, _, rest = text.partition(" ")
            return path, rest
        end = path_end(text)
        if end < 0:  # unterminated: let the handler refuse it with the sender/recipient code
            return text[1:], ""
        return text[1:end] or "<>", text[end + 1 :]

    def data_received(self, data: bytes) -> None:
        # While a message is read, its bytes pass the DATA budget's meter, which keeps them
        # back (and pauses the transport) when a large message must wait for its slot.
        if self._meter is not None:
            passed = self._meter.received(data)
            if passed is None:
                return
            data = passed
        super().data_received(data)

    @syntax("DATA")
    async def smtp_DATA(self, arg: str | None) -> None:
        # aiosmtpd's own, with data.read_data in place of its 1,000-byte line reader, inside
        # the process's DATA budget: from before the 354 until the reply is sent.
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        budget = self._budget
        if not await budget.data.acquire(budget.wait_timeout):
            # The client has sent nothing of the message yet: it keeps it and retries.
            assert self.session is not None
            self._log.info("message deferred", peer=str(self.session.peer), reply=str(BUSY))
            self.envelope = self._create_envelope()
            await self.push(str(BUSY))
            return
        meter = budget.meter(_SessionFlow(self))
        try:
            await self._data_phase(meter)
        finally:
            self._meter = None
            meter.close()
            budget.data.release()

    async def _data_phase(self, meter: Meter) -> None:
        assert self.envelope is not None
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        self._meter = meter
        try:
            content = await read_data(self._reader, self.data_size_limit)
        except asyncio.CancelledError:
            self._writer.close()  # the connection went away during DATA
            raise
        finally:
            self._meter = None  # what follows the final dot is the next command
        if content is None:
            assert self.session is not None
            self._log.info("message refused", peer=str(self.session.peer), reply=str(TOO_MUCH_DATA))
            self.envelope = self._create_envelope()  # as aiosmtpd does after DATA
            await self.push(str(TOO_MUCH_DATA))
            return
        self.envelope.content = self.envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        self.envelope = self._create_envelope()
        await self.push(status)

    def _refuse_large(self) -> None:
        """A large message waited too long for its slot: 421 and the connection closes; the
        client, which never saw a 250, keeps the message (RFC 5321 §3.8)."""
        assert self.session is not None
        self._log.info("message deferred", peer=str(self.session.peer), reply=str(BUSY_CLOSING))
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(f"{BUSY_CLOSING}\r\n".encode("ascii"))  # type: ignore[attr-defined]
            self.transport.close()


class _SessionFlow:
    """The session as its DATA meter sees it (budget.Flow)."""

    def __init__(self, session: GatewaySMTP) -> None:
        self._session = session

    def pause(self) -> None:
        if self._session.transport is not None:
            self._session.transport.pause_reading()  # type: ignore[attr-defined]

    def resume(self) -> None:
        if self._session.transport is not None:
            self._session.transport.resume_reading()  # type: ignore[attr-defined]

    def feed(self, data: bytes) -> None:
        SMTP.data_received(self._session, data)

    def refuse(self) -> None:
        self._session._refuse_large()
