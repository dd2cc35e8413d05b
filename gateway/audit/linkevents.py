"""The audit trail of secure links: one function per step of a link's life, from the decision
that sends it to each view, download, reply and revocation. Every one names the hold and the
link; none carries a token, a code, a subject or a body. The actor of a recipient's step is
the recipient's address as the link names it, with the client it came from in the data: the
gateway cannot know who holds the mailbox, only that they had its code."""

from __future__ import annotations

from collections.abc import Sequence

from gateway.audit.events import GATEWAY, actor
from gateway.store import AuditRecord, Hold
from gateway.store.links import Link


def links_sent(
    hold: Hold, by: str, rationale: str, links: Sequence[tuple[str, str]], automatic: bool
) -> AuditRecord:
    """The decision: sent by secure link to these (link id, recipient) pairs."""
    return AuditRecord(
        "link-sent",
        hold.id,
        actor(by),
        {
            "rationale": rationale,
            "links": [{"link": link_id, "recipient": address} for link_id, address in links],
            "automatic": automatic,
        },
    )


def _step(event: str, link: Link, by: str, client: str, **data: object) -> AuditRecord:
    return AuditRecord(
        event,
        link.hold_id,
        actor(by) or GATEWAY,
        {"link": link.id, "recipient": link.recipient, "client": client, **data},
    )


def code_sent(link: Link, client: str) -> AuditRecord:
    """A one-time code was sent to the recipient's address (asked for from ``client``)."""
    return _step("link-code-sent", link, link.recipient, client, codes_sent=link.code.sent + 1)


def code_failed(link: Link, client: str, attempts: int, locked: bool) -> AuditRecord:
    """A wrong code was entered; ``locked`` when it was the last attempt allowed."""
    return _step(
        "link-locked" if locked else "link-code-failed",
        link,
        link.recipient,
        client,
        attempts=attempts,
    )


def opened(link: Link, client: str) -> AuditRecord:
    """The first view after a right code: the recipient has the message."""
    return _step("link-opened", link, link.recipient, client)


def viewed(link: Link, client: str) -> AuditRecord:
    """A later view of the message through the link."""
    return _step("link-viewed", link, link.recipient, client)


def attachment_downloaded(link: Link, client: str, index: int, filename: str) -> AuditRecord:
    return _step(
        "link-attachment-downloaded", link, link.recipient, client, part=index, filename=filename
    )


def replied(link: Link, client: str, size: int, notice_to: str) -> AuditRecord:
    """The recipient replied through the portal; the reply went to ``notice_to`` (the sender).
    Its text is not kept here, like any body."""
    return _step("link-reply", link, link.recipient, client, size=size, to=notice_to)


def revoked(link: Link, by: str, reason: str) -> AuditRecord:
    return _step("link-revoked", link, by, "", reason=reason)


def unopened(link: Link, waited_seconds: float, told: Sequence[str]) -> AuditRecord:
    """Nobody opened the link in time; the sender and reviewers were told."""
    return _step(
        "link-unopened", link, GATEWAY, "", waited_seconds=round(waited_seconds), told=list(told)
    )
