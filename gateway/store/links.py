"""What the store keeps of a secure link (``gateway.core.securelink``): one per recipient of a
hold sent by secure link. Only digests of the token and of the current code are kept."""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.core.securelink import CodeFacts, LinkFacts


@dataclass(frozen=True)
class NewLink:
    """A link to create with the decision that sends it."""

    id: str  # shown to reviewers and in the audit trail ("L" and ten base32 characters)
    recipient: str
    token_digest: str  # core.securelink.token_digest of the token in the recipient's email
    expires_at: float


@dataclass(frozen=True)
class Link:
    id: str
    hold_id: str
    recipient: str
    token_digest: str
    created_at: float
    created_by: str
    expires_at: float
    code: CodeFacts = field(default_factory=CodeFacts)
    revoked_at: float | None = None
    revoked_by: str = ""
    locked_at: float | None = None
    opened_at: float | None = None  # the first view after a right code
    unopened_noticed_at: float | None = None  # when the "not opened yet" notice was queued

    def facts(self, purged: bool) -> LinkFacts:
        return LinkFacts(self.expires_at, self.revoked_at, self.locked_at, purged)
