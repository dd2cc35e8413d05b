"""The SMTP face of the gateway (aiosmtpd, on the main event loop).

Limits and admission live here: trusted networks (anyone else gets 554 5.7.1 in place of the
greeting, RFC 5321 §3.1: never an open relay), the connection cap (421), SIZE (552), the
recipient cap (452). DSN parameters (RFC 3461: RET, ENVID, NOTIFY, ORCPT), which stock aiosmtpd
refuses with 555, are taken off the command with their case kept, checked, and passed on.
Any unexpected error becomes 451 4.3.0 with no internals in the reply.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from gateway import errors, logs
from gateway.core.addresses import AddressError, split_address
from gateway.delivery.transport import Recipient
from gateway.filter.message import Incoming
from gateway.filter.orchestrator import Filter
from gateway.smtp.reply import SmtpReply

IDENT = "Safeguarding Mail Gateway"

# The replies of this face (aiosmtpd's hooks take them as strings: str(reply)).
NOT_TRUSTED = SmtpReply(554, "5.7.1", "Relay access denied: not a trusted network")
TOO_MANY_CONNECTIONS = SmtpReply(421, "4.3.2", "Too many connections; try again later")
BAD_SENDER = SmtpReply(553, "5.1.7", "Bad sender address syntax")
BAD_RECIPIENT = SmtpReply(553, "5.1.3", "Bad recipient address syntax")
TOO_MANY_RECIPIENTS = SmtpReply(452, "4.5.3", "Too many recipients")  # RFC 5321 §4.5.3.1.10
SENDER_OK = SmtpReply(250, "2.1.0", "Ok")
RECIPIENT_OK = SmtpReply(250, "2.1.5", "Ok")


def malformed_parameter(name: str) -> SmtpReply:
    return SmtpReply(501, "5.5.4", f"Malformed {name} parameter")


# RFC 3461 §4.1-4.4 and §5.2: the parameters' syntax. xtext is printable ASCII except "+"
# and "=", which travel as "+XX" hex escapes.
_XTEXT = r"(?:[!-*,-<>-~]|\+[0-9A-F]{2})+"
_DSN_MAIL = {
    "RET": re.compile(r"(?:FULL|HDRS)\Z", re.IGNORECASE),
    "ENVID": re.compile(rf"{_XTEXT}\Z"),
}
_DSN_RCPT = {
    "NOTIFY": re.compile(
        r"(?:NEVER|(?:SUCCESS|FAILURE|DELAY)(?:,(?:SUCCESS|FAILURE|DELAY))*)\Z", re.IGNORECASE
    ),
    "ORCPT": re.compile(rf"[A-Za-z0-9-]+;{_XTEXT}\Z"),
}


class Admission:
    """Who may connect, and how many at once."""

    def __init__(self, trusted_networks: Sequence[str], max_connections: int) -> None:
        self._networks = [ipaddress.ip_network(n, strict=False) for n in trusted_networks]
        self._max = max_connections
        self.active = 0

    def trusted(self, peer: Any) -> bool:
        try:
            address = ipaddress.ip_address(peer[0])
        except (TypeError, ValueError, IndexError):
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self._networks)

    def refusal(self, peer: Any) -> SmtpReply | None:
        if not self.trusted(peer):
            return NOT_TRUSTED
        if self.active >= self._max:
            return TOO_MANY_CONNECTIONS
        return None


def path_end(arg: str) -> int:
    """Where the <path> of a MAIL/RCPT argument ends: the first ">" outside a quoted local
    part (RFC 5321 §4.1.2), not the last one: an xtext value such as ENVID may hold ">"."""
    start = arg.find("<")
    if start < 0:
        return -1
    quoted = escaped = False
    for index in range(start + 1, len(arg)):
        char = arg[index]
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == ">" and not quoted:
            return index
    return -1


def split_params(
    arg: str, known: dict[str, re.Pattern[str]]
) -> tuple[str, list[str], SmtpReply | None]:
    """Take the parameters in ``known`` off a MAIL/RCPT argument, keeping their case.
    Returns the rest of the argument, the parameters, and an error reply if one is malformed."""
    end = path_end(arg)
    head, tail = (arg[: end + 1], arg[end + 1 :]) if end >= 0 else ("", arg)
    kept, taken = [], []
    for token in tail.split():
        name, _, value = token.partition("=")
        pattern = known.get(name.upper())
        if pattern is None:
            kept.append(token)
        elif not value or not pattern.match(value):
            return arg, [], malformed_parameter(name.upper())
        else:
            taken.append(f"{name.upper()}={value}")
    return " ".join([head, *kept]).strip(), taken, None


class DsnEnvelope(Envelope):
    """aiosmtpd's envelope plus the DSN parameters, per recipient in RCPT order."""

    def __init__(self) -> None:
        super().__init__()
        self.dsn_mail: list[str] = []
        self.dsn_rcpt: list[tuple[str, ...]] = []


class GatewaySMTP(SMTP):
    def __init__(self, handler: Handler, admission: Admission, **kwargs: Any) -> None:
        super().__init__(handler, ident=IDENT, **kwargs)
        self._admission = admission

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
            log = logs.get("gateway.smtp")
            log.info("connection refused", peer=str(self.session.peer), reply=str(refusal))
            await self.push(str(refusal))
            self.transport.close()
            return
        self._admission.active += 1
        try:
            await super()._handle_client()
        finally:
            self._admission.active -= 1

    async def smtp_MAIL(self, arg: str | None) -> None:
        if arg is None:
            await super().smtp_MAIL(arg)
            return
        rest, dsn, error = split_params(arg, _DSN_MAIL)
        if error is not None:
            await self.push(str(error))
            return
        before = self._dsn_envelope().mail_from
        await super().smtp_MAIL(rest)
        if self._dsn_envelope().mail_from and not before:
            self._dsn_envelope().dsn_mail = dsn

    async def smtp_RCPT(self, arg: str | None) -> None:
        if arg is None:
            await super().smtp_RCPT(arg)
            return
        rest, dsn, error = split_params(arg, _DSN_RCPT)
        if error is not None:
            await self.push(str(error))
            return
        count = len(self._dsn_envelope().rcpt_tos)
        await super().smtp_RCPT(rest)
        if len(self._dsn_envelope().rcpt_tos) > count:
            self._dsn_envelope().dsn_rcpt.append(tuple(dsn))


class Handler:
    """aiosmtpd's hooks: checks at MAIL and RCPT, then the filter at the end of DATA."""

    def __init__(self, filter_: Filter, max_recipients: int) -> None:
        self._filter = filter_
        self._max_recipients = max_recipients
        self._log = logs.get("gateway.smtp")

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address != "<>":
            try:
                split_address(address)
            except AddressError:
                return str(BAD_SENDER)
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return str(SENDER_OK)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if len(envelope.rcpt_tos) >= self._max_recipients:
            return str(TOO_MANY_RECIPIENTS)
        try:
            split_address(address)
        except AddressError:
            return str(BAD_RECIPIENT)
        envelope.rcpt_tos.append(address)
        return str(RECIPIENT_OK)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope, DsnEnvelope)
        dsn_rcpt = envelope.dsn_rcpt
        recipients = tuple(
            Recipient(address, dsn_rcpt[i] if i < len(dsn_rcpt) else ())
            for i, address in enumerate(envelope.rcpt_tos)
        )
        sender = "" if envelope.mail_from in (None, "<>") else envelope.mail_from
        assert sender is not None
        assert session.peer is not None
        # SIZE described the client's copy, which our trace headers make larger: not passed on.
        mail_options = [o for o in envelope.mail_options if o.startswith(("BODY=", "SMTPUTF8"))]
        incoming = Incoming(
            client_ip=str(session.peer[0]),
            helo=session.host_name or "",
            esmtp=bool(session.extended_smtp),
            sender=sender,
            mail_options=(*mail_options, *envelope.dsn_mail),
            recipients=recipients,
            data=envelope.original_content or b"",
            smtputf8=bool(envelope.smtp_utf8),
        )
        try:
            reply = await self._filter.handle(incoming)
        except Exception as exc:
            # Answered here, not by aiosmtpd's exception hook, so that the transaction is
            # reset and the client can send its next message in the same session.
            self._log.exception("unexpected error", sender=sender, **errors.log_fields(exc))
            return str(errors.reply_for(exc))
        return str(reply)

    async def handle_exception(self, error: Exception) -> str:
        self._log.error("unexpected error", exc_info=error, **errors.log_fields(error))
        return str(errors.reply_for(error))
