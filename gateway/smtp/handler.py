"""aiosmtpd's hooks for the gateway's sessions: the envelope checks at MAIL and RCPT, then the
filter at the end of DATA, whose reply is the session's.

The session itself (limits, TLS, AUTH, the DATA reader) is ``server.GatewaySMTP``; the syntax
of a path is ``paths``', whom a session may send as ``senders``'.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiosmtpd.smtp import SMTP, Envelope, Session

from gateway import errors, logs
from gateway.core.addresses import normalise_domain
from gateway.delivery.transport import Recipient
from gateway.filter.message import Incoming
from gateway.filter.orchestrator import Filter
from gateway.smtp import paths, senders, xforward
from gateway.smtp.reply import SmtpReply
from gateway.smtp.server import DsnEnvelope, GatewaySMTP

# The replies of the hooks (aiosmtpd takes them as strings: str(reply)).
TOO_MANY_RECIPIENTS = SmtpReply(452, "4.5.3", "Too many recipients")  # RFC 5321 §4.5.3.1.10
SENDER_OK = SmtpReply(250, "2.1.0", "Ok")
RECIPIENT_OK = SmtpReply(250, "2.1.5", "Ok")


class Handler:
    """aiosmtpd's hooks: checks at MAIL and RCPT, then the filter at the end of DATA.

    ``RCPT TO:<Postmaster>`` (RFC 5321 §4.5.1: MUST be accepted) goes to the postmaster of the
    first of ``local_domains``, the organisation's own; with none configured it is passed on
    as written, for the smarthost's postmaster. Either way the filter treats it like any
    recipient: relayed unchecked when unflagged, checked (or held) when flagged."""

    def __init__(
        self, filter_: Filter, max_recipients: int, local_domains: Sequence[str] = ()
    ) -> None:
        self._filter = filter_
        self._max_recipients = max_recipients
        self._postmaster = (
            f"postmaster@{normalise_domain(local_domains[0])}" if local_domains else ""
        )
        self._senders = senders.SenderRule(local_domains)
        self._log = logs.get("gateway.smtp")

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname  # as aiosmtpd does when there is no EHLO hook
        return server.extensions(responses) if isinstance(server, GatewaySMTP) else responses

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address != "<>":
            address = paths.strip_route(address)
            refusal = paths.refusal(address, smtputf8=bool(envelope.smtp_utf8), sender=True)
            if refusal is None and _bound(server):
                refusal = self._senders.envelope_refusal(address)
            if refusal is not None:
                self._refused(session, "sender", address, refusal)
                return str(refusal)
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return str(SENDER_OK)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if len(envelope.rcpt_tos) >= self._max_recipients:
            return str(TOO_MANY_RECIPIENTS)
        address = paths.strip_route(address)
        if paths.is_postmaster(address):
            address = self._postmaster or address
        else:
            refusal = paths.refusal(address, smtputf8=bool(envelope.smtp_utf8), sender=False)
            if refusal is not None:
                self._refused(session, "recipient", address, refusal)
                return str(refusal)
        envelope.rcpt_tos.append(address)
        return str(RECIPIENT_OK)

    def _refused(self, session: Session, role: str, address: str, reply: SmtpReply) -> None:
        # ascii(): the address may hold control characters, bidi marks or lone surrogates.
        self._log.info(
            "address refused",
            peer=str(session.peer),
            role=role,
            address=ascii(address),
            reply=str(reply),
        )

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
        data = envelope.original_content or b""
        refusal = self._senders.header_refusal(data) if _bound(server) else None
        if refusal is not None:
            self._log.info("message refused", peer=str(session.peer), reply=str(refusal))
            return str(refusal)
        # SIZE described the client's copy, which our trace headers make larger: not passed on.
        mail_options = [o for o in envelope.mail_options if o.startswith(("BODY=", "SMTPUTF8"))]
        incoming = Incoming(
            **xforward.client_fields(envelope.forwarded, str(session.peer[0]), session.host_name),
            esmtp=bool(session.extended_smtp),
            sender=sender,
            mail_options=(*mail_options, *envelope.dsn_mail),
            recipients=recipients,
            data=data,
            smtputf8=bool(envelope.smtp_utf8),
            requiretls=envelope.requiretls,
            **_tls_fields(server),
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


def _bound(server: SMTP) -> bool:
    """Whether the session may send only as the local domains (``senders``)."""
    return isinstance(server, GatewaySMTP) and senders.bound(server.trusted_as)


def _tls_fields(server: SMTP) -> dict[str, str]:
    """What the Received: field says of the session's TLS and AUTH (RFC 3848)."""
    if not isinstance(server, GatewaySMTP) or server.tls is None:
        return {}
    return {
        "tls_version": server.tls.version,
        "cipher": server.tls.cipher,
        "auth_user": server.auth_user,
    }
