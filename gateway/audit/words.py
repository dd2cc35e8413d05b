"""Each audit entry as one sentence for people: the one reading the web trail, the hold and
tracking pages, ``gateway audit list`` and ``gateway trace`` all show. The facts stay in the
entry (folded away on the pages, ``--verbose`` and ``--json`` on the CLI, ``audit export``).

A pure function of the entry alone (no clock, no I/O), so a trail read years later, or one
written by another release, reads the same: an event this version does not know still gets a
line, and a field missing from an old entry reads as "?" rather than failing. Lists of
addresses are cut to the first few ("and 96 more"): one message to a hundred people is one
line; the details keep them all.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from gateway.audit.proofwords import delivered_words
from gateway.core.auditchain import KEYED
from gateway.core.reasons import labelled

# How many addresses a sentence names before "and N more".
NAMED = 3

# How a relayed recipient's domain was proven secure (``core.model.Transport`` labels).
_TRANSPORT_WORDS = {
    "dane": "over DANE-verified TLS",
    "mta-sts-enforce": "over MTA-STS-enforced TLS",
    "mta-sts-testing": "over TLS with MTA-STS in testing mode only",
    "none": "without proven TLS",
}

_NOTICE_WORDS = {
    "held": "The sender was told it is held",
    "held-reviewers": "Reviewers were alerted to the hold",
    "released": "The sender was told it was released",
    "rejected": "The sender was told it was rejected, with the reason",
    "expired": "The sender was told it expired unreviewed",
    "escalated": "The escalation notice went",
    "delivered": "The sender was sent the delivery confirmation",
    "audit-head": "The audit trail's head was sent to its witnesses",
    "link": "The secure link was emailed",
    "link-code": "A one-time code was emailed",
    "linked": "The sender was told it was sent by secure link",
    "linked-reviewers": "Reviewers were told it was sent by secure link automatically",
    "link-opened": "The sender was told the secure link was opened",
    "link-unopened": "The sender and reviewers were told the secure link was not opened",
    "link-reply": "The recipient's reply went to the sender",
}

_SIGN_IN_WORDS = {
    "wrong-password": "wrong password",
    "unknown-account": "no such account",
    "disabled": "account disabled",
    "throttled": "too many attempts, throttled",
    "submit-only": "a submit-only account cannot sign in to the web UI",
}


def sentence(event: str, actor: str, hold_id: str, data: Mapping[str, Any]) -> str:
    """One entry of the trail as a sentence; the details stay in the entry."""
    words = _SENTENCES.get(event)
    if words is not None:
        return words(actor, hold_id, data)
    # An event this release does not know: its name and who, still one readable line.
    return f"{event.replace('-', ' ').capitalize()} (by {actor or '?'})"


def names(value: Any, named: int = NAMED) -> str:
    """ "a, b, c and 97 more" from a list (or a mapping's keys); "-" when there is none."""
    items = [str(v) for v in value] if isinstance(value, list | tuple | dict) else []
    if not items:
        return "-"
    shown = ", ".join(items[:named])
    rest = len(items) - named
    return f"{shown} and {rest} more" if rest > 0 else shown


def size_words(count: int) -> str:
    if count < 1024:
        return f"{count} bytes"
    if count < 1024 * 1024:
        return f"{count / 1024:.1f} KB"
    return f"{count / (1024 * 1024):.1f} MB"


# --- Mail: arrival, verdicts, holds and decisions ---------------------------------------------


def _received(actor: str, hold_id: str, data: Mapping[str, Any]) -> str:
    return (
        f"Received from {data.get('sender') or '<>'} (client {data.get('client') or '?'}) "
        f"for {names(data.get('recipients'))}; flagged: {_findings(data)}"
    )


def _relayed(actor: str, hold_id: str, data: Mapping[str, Any]) -> str:
    """ "Relayed at once to a@x.test over MTA-STS-enforced TLS; b@y.test over DANE-verified
    TLS": each recipient with how its domain was proven secure (the entry's ``facts``)."""
    facts = data.get("facts")
    facts = facts if isinstance(facts, Mapping) else {}
    groups: dict[str, list[str]] = {}
    for address in data.get("recipients") or ():
        domain = str(address).rpartition("@")[2].lower()
        fact = facts.get(domain)
        label = str(fact.get("transport") or "") if isinstance(fact, Mapping) else ""
        how = _TRANSPORT_WORDS.get(label, f"over {label}" if label else "(how: not recorded)")
        groups.setdefault(how, []).append(str(address))
    if not groups:
        return "Relayed at once to -"
    return "Relayed at once to " + "; ".join(f"{names(a)} {how}" for how, a in groups.items())


def _held(actor: str, hold_id: str, data: Mapping[str, Any]) -> str:
    recipients = data.get("recipients")
    recipients = dict(recipients) if isinstance(recipients, Mapping) else {}
    why = "; ".join(f"{a} — {_reasons(r)}" for a, r in list(recipients.items())[:NAMED])
    if len(recipients) > NAMED:
        why += f"; and {len(recipients) - NAMED} more"
    return f"Held for review as {hold_id or '?'}: {why or '-'}"


def _release_requested(actor: str, hold_id: str, data: Mapping[str, Any]) -> str:
    return f"Release decided by {actor}: {_said(data.get('rationale'))}"


def _released(actor: str, hold_id: str, data: Mapping[str, Any]) -> str:
    sent = names(data.get("delivered"))
    # The rationale is free text, often a sentence of its own: what followed it goes after a dash.
    text = f"Released by {actor}: {_said(data.get('rationale'))} — sent to {sent}"
    refused = data.get("refused")
    refused = dict(refused) if isinstance(refused, Mapping) else {}
    return text + "".join(f"; refused for {a}: {r}" for a, r in list(refused.items())[:NAMED])


def _rejected(actor: str, hold_id: str, data: Mapping[str, Any]) -> str:
    return f"Rejected by {actor}: {_said(data.get('reason'))}"


def _expired(actor: str, hold_id: str, data: Mapping[str, Any]) -> str:
    return f"Expired unreviewed after {data.get('after_hours', '?')} hours"


def _escalated(actor: str, hold_id: str, data: Mapping[str, Any]) -> str:
    waited = data.get("waited_hours")
    after = f" after {waited} hours unreviewed" if waited is not None else ""
    return f"Escalated to {names(data.get('contacts'))}{after}"


def _purged(actor: str, hold_id: str, data: Mapping[str, Any]) -> str:
    return f"Body deleted by {actor} (the message was {data.get('status', '?')}); the record stays"


def _notice_sent(actor: str, hold_id: str, data: Mapping[str, Any]) -> str:
    kind = str(data.get("kind") or "")
    told = _NOTICE_WORDS.get(kind, f"Notice ({kind or '?'}) sent")
    return f"{told}: {names(data.get('to'))}"


def _viewed(actor: str, hold_id: str, data: Mapping[str, Any]) -> str:
    return f"Viewed by {actor}"


def _attachment_downloaded(actor: str, hold_id: str, data: Mapping[str, Any]) -> str:
    # Entries written before the name was recorded have only the part number.
    name = str(data.get("filename") or "") or f"number {data.get('attachment', '?')}"
    size = data.get("size")
    of = f" ({size_words(size)})" if isinstance(size, int) else ""
    return f"Attachment {name}{of} downloaded by {actor}"


# --- Secure links (``audit.linkevents``) -------------------------------------------------------


def _link_sent(actor: str, hold_id: str, data: Mapping[str, Any]) -> str:
    links = data.get("links")
    pairs = [
        f"{link.get('recipient', '?')} ({link.get('link', '?')})"
        for link in (links if isinstance(links, list) else [])
        if isinstance(link, Mapping)
    ]
    how = "automatically" if data.get("automatic") else f"by {actor}"
    return f"Sent by secure link {how} to {names(pairs)}: {_said(data.get('rationale'))}"


def _link(data: Mapping[str, Any]) -> str:
    return f"link {data.get('link', '?')} to {data.get('recipient', '?')}"


def _from(data: Mapping[str, Any]) -> str:
    client = str(data.get("client") or "")
    return f" (from {client})" if client else ""


def _link_code_sent(actor: str, hold_id: str, data: Mapping[str, Any]) -> str:
    return f"One-time code number {data.get('codes_sent', '?')} sent for {_link(data)}{_from(data)}"


def _link_code_failed(actor: str, hold_id: str, data: Mapping[str, Any]) -> str:
    return f"Wrong code entered for {_link(data)}{_from(data)}, attempt {data.get('attempts', '?')}"


def _link_locked(actor: str, hold_id: str, data: Mapping[str, Any]) -> str:
    return (
        f"Locked {_link(data)} after {data.get('attempts', '?')} wrong codes{_from(data)}; "
        "a reviewer must send a new link"
    )


def _link_opened(actor: str, hold_id: str, data: Mapping[str, Any]) -> str:
    return f"Opened for the first time through {_link(data)}{_from(data)}, after a right code"


def _link_viewed(actor: str, hold_id: str, data: Mapping[str, Any]) -> str:
    return f"Viewed again through {_link(data)}{_from(data)}"


def _link_attachment(actor: str, hold_id: str, data: Mapping[str, Any]) -> str:
    name = str(data.get("filename") or "") or f"number {data.get('part', '?')}"
    return f"Attachment {name} downloaded through {_link(data)}{_from(data)}"


def _link_reply(actor: str, hold_id: str, data: Mapping[str, Any]) -> str:
    size = data.get("size")
    of = f" ({size_words(size)})" if isinstance(size, int) else ""
    return f"Reply{of} through {_link(data)}{_from(data)}, sent to {data.get('to') or '?'}"


def _link_revoked(actor: str, hold_id: str, data: Mapping[str, Any]) -> str:
    return f"Revoked {_link(data)} by {actor}: {_said(data.get('reason'))}"


def _link_unopened(actor: str, hold_id: str, data: Mapping[str, Any]) -> str:
    waited = data.get("waited_seconds")
    hours = f" after {round(waited / 3600, 1):g} hours" if isinstance(waited, int | float) else ""
    return f"Not opened{hours}: {_link(data)}; told {names(data.get('told'))}"


# --- The delivery queue ([delivery] direct) ---------------------------------------------------


def _queued(actor: str, hold_id: str, data: Mapping[str, Any]) -> str:
    return (
        f"Queued as {data.get('queue_id', '?')} for delivery to the recipients' mail servers: "
        f"{names(data.get('recipients'))}; flagged: {_findings(data)}"
    )


def _queue_delivered(actor: str, hold_id: str, data: Mapping[str, Any]) -> str:
    return (
        f"Taken by the mail server of {data.get('domain', '?')} from queue entry "
        f"{data.get('queue_id', '?')}: {names(data.get('recipients'))}"
    )


def _queue_failed(actor: str, hold_id: str, data: Mapping[str, Any]) -> str:
    recipients = data.get("recipients")
    recipients = dict(recipients) if isinstance(recipients, Mapping) else {}
    refused = "; ".join(f"{a}: {r}" for a, r in list(recipients.items())[:NAMED])
    if len(recipients) > NAMED:
        refused += f"; and {len(recipients) - NAMED} more"
    how = "given up" if data.get("gave_up") else "refused"
    return (
        f"Not delivered from queue entry {data.get('queue_id', '?')} ({how}), "
        f"the sender told: {refused or '-'}"
    )


def _queue_purged(actor: str, hold_id: str, data: Mapping[str, Any]) -> str:
    return (
        f"Taken out of the queue by {actor} ({_said(data.get('reason'))}); not delivered to "
        f"{names(data.get('recipients'))}, the sender told"
    )


# --- Accounts, sessions and the chain itself --------------------------------------------------


def _signed_in(actor: str, hold_id: str, data: Mapping[str, Any]) -> str:
    return f"{actor} signed in from {data.get('client') or '?'}"


def _sign_in_failed(actor: str, hold_id: str, data: Mapping[str, Any]) -> str:
    why = str(data.get("why") or "?")
    return (
        f"Sign-in as {actor} from {data.get('client') or '?'} refused: "
        f"{_SIGN_IN_WORDS.get(why, why)}"
    )


def _signed_out(actor: str, hold_id: str, data: Mapping[str, Any]) -> str:
    return f"{actor} signed out"


def _user_added(actor: str, hold_id: str, data: Mapping[str, Any]) -> str:
    return f"Account {data.get('user', '?')} ({data.get('role', '?')}) added by {actor}"


def _password_changed(actor: str, hold_id: str, data: Mapping[str, Any]) -> str:
    return f"Password of {data.get('user', '?')} changed by {actor}"


def _user_disabled(actor: str, hold_id: str, data: Mapping[str, Any]) -> str:
    return f"Account {data.get('user', '?')} disabled by {actor}"


def _user_enabled(actor: str, hold_id: str, data: Mapping[str, Any]) -> str:
    return f"Account {data.get('user', '?')} enabled again by {actor}"


def _chain_keyed(actor: str, hold_id: str, data: Mapping[str, Any]) -> str:
    return (
        f"The audit chain was keyed ({data.get('rule', '?')}) after "
        f"{data.get('legacy_entries', '?')} earlier entries"
    )


def _said(value: Any) -> str:
    """A rationale or reason on one line: a sentence is one line; the entry keeps the text."""
    return " ".join(str(value or "").split())


def _reasons(codes: Any) -> str:
    """Each reason code in plain words with the code (``core.reasons``)."""
    codes = codes if isinstance(codes, list | tuple) else [codes]
    return ", ".join(labelled(str(c)) for c in codes) or "?"


def _findings(data: Mapping[str, Any]) -> str:
    return ", ".join(str(f) for f in data.get("findings") or ()) or "-"


_SENTENCES: dict[str, Callable[[str, str, Mapping[str, Any]], str]] = {
    "received": _received,
    "relayed": _relayed,
    "delivered": lambda actor, hold_id, data: delivered_words(data),
    "held": _held,
    "release-requested": _release_requested,
    "released": _released,
    "rejected": _rejected,
    "expired": _expired,
    "escalated": _escalated,
    "purged": _purged,
    "notice-sent": _notice_sent,
    "viewed": _viewed,
    "attachment-downloaded": _attachment_downloaded,
    "link-sent": _link_sent,
    "link-code-sent": _link_code_sent,
    "link-code-failed": _link_code_failed,
    "link-locked": _link_locked,
    "link-opened": _link_opened,
    "link-viewed": _link_viewed,
    "link-attachment-downloaded": _link_attachment,
    "link-reply": _link_reply,
    "link-revoked": _link_revoked,
    "link-unopened": _link_unopened,
    "queued": _queued,
    "queue-delivered": _queue_delivered,
    "queue-failed": _queue_failed,
    "queue-purged": _queue_purged,
    "signed-in": _signed_in,
    "sign-in-failed": _sign_in_failed,
    "signed-out": _signed_out,
    "user-added": _user_added,
    "password-changed": _password_changed,
    "user-disabled": _user_disabled,
    "user-enabled": _user_enabled,
    KEYED: _chain_keyed,
}

# The events this release writes and reads as sentences (the trail page's event filter).
KNOWN = frozenset(_SENTENCES)
