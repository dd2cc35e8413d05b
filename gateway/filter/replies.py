"""The filter's own SMTP replies, and how an upstream's answer is handed back to the client."""

from __future__ import annotations

from collections.abc import Sequence

from gateway.core.model import Action, RecipientDecision
from gateway.delivery.transport import Reply
from gateway.smtp.reply import SmtpReply

TEMPFAIL_DNS = SmtpReply(451, "4.4.3", "Recipient security could not be verified; try later")
TEMPFAIL_STORE = SmtpReply(451, "4.3.0", "Could not store the message; try again later")
TEMPFAIL_UPSTREAM = SmtpReply(451, "4.4.1", "Upstream unavailable; try again later")


def upstream_reply(reply: Reply) -> SmtpReply:
    if reply.temporary or reply.code < 400:
        return TEMPFAIL_UPSTREAM
    return SmtpReply(reply.code, "5.0.0", f"Upstream refused: {reply.text[:200]}")


def outcome(reply: SmtpReply, decisions: Sequence[RecipientDecision]) -> str:
    if reply.code >= 500:
        return "refused"
    if reply.code >= 400:
        return "tempfailed"
    actions = {d.action for d in decisions}
    if actions == {Action.RELAY}:
        return "relayed"
    return "held" if actions == {Action.HOLD} else "split"
