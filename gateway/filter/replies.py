"""The filter's own SMTP replies, and how an upstream's answer is handed back to the client."""

from __future__ import annotations

import re
from collections.abc import Sequence

from gateway.core.model import Action, RecipientDecision
from gateway.delivery.transport import Reply
from gateway.smtp.reply import SmtpReply

TEMPFAIL_DNS = SmtpReply(451, "4.4.3", "Recipient security could not be verified; try later")
TEMPFAIL_STORE = SmtpReply(451, "4.3.0", "Could not store the message; try again later")
TEMPFAIL_UPSTREAM = SmtpReply(451, "4.4.1", "Upstream unavailable; try again later")


# RFC 3463 §2: class "." subject "." detail, subject and detail of one to three digits.
_ENHANCED = re.compile(r"([245])\.(?:[1-9][0-9]{0,2}|0)\.(?:[1-9][0-9]{0,2}|0)(?=\s|\Z)")


def upstream_reply(reply: Reply) -> SmtpReply:
    """A refusal handed back as ``<code> <enhanced> Upstream refused: <text>``. The upstream's
    own enhanced status code is passed on when its text starts with one of the reply's class
    (RFC 3463 §2, RFC 2034 §3: "5.7.30" says what to fix); else the generic "5.0.0"."""
    if reply.temporary or reply.code < 400:
        return TEMPFAIL_UPSTREAM
    text = reply.text.lstrip()
    given = _ENHANCED.match(text)
    if given is None or given.group(1) != str(reply.code)[0]:
        return SmtpReply(reply.code, "5.0.0", f"Upstream refused: {reply.text[:200]}")
    rest = text[given.end() :].lstrip()
    return SmtpReply(reply.code, given.group(0), f"Upstream refused: {rest[:200]}".rstrip())


def outcome(reply: SmtpReply, decisions: Sequence[RecipientDecision]) -> str:
    if reply.code >= 500:
        return "refused"
    if reply.code >= 400:
        return "tempfailed"
    actions = {d.action for d in decisions}
    if actions == {Action.RELAY}:
        return "relayed"
    return "held" if actions == {Action.HOLD} else "split"
