"""What the store keeps of a recipient domain's assessment: the store's own record, not the
``gateway check --json`` presentation, so changing what the command shows never changes what
the hold store and the audit trail hold. ``gateway.posture.assessment.record_of`` builds it;
``gateway.store.schema`` writes and reads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class DaneHostRecord:
    host: str
    status: str  # usable, unusable, none, insecure, temporary (RFC 7672 §2.2)
    tlsa: tuple[str, ...] = ()  # presentation form: usage selector type data


@dataclass(frozen=True)
class AssessmentRecord:
    """A recipient domain's transport facts and the verdict drawn from them."""

    domain: str  # A-labels
    verdict: str  # secure, insecure
    transport: str  # the level every MX host reached: none, mta-sts-enforce, dane, ...
    reasons: tuple[str, ...] = ()  # reason codes (gateway.core.model.Reason)
    allowlist: str = ""  # allowed, not-listed, expired, ...
    allowlist_entry: str = ""  # the entry's name, when one matched
    mx_status: str = ""  # found, implicit, null, nxdomain, temporary
    mx_hosts: tuple[str, ...] = ()
    mx_dnssec: bool = False
    sts_record: str = ""  # the _mta-sts TXT record: found, none, invalid, temporary
    sts_id: str = ""
    sts_policy: str = ""  # ok, not-fetched, or why the fetch failed
    sts_mode: str = ""  # enforce, testing, none
    sts_mx: tuple[str, ...] = ()  # the policy's mx patterns (RFC 8461 §3.2)
    sts_covers_mx: bool | None = None  # None: no policy
    tls_rpt: str = ""  # the _smtp._tls TXT record (RFC 8460): found, none, ...
    tls_rpt_rua: tuple[str, ...] = ()
    dane: str = ""  # usable, partial, unusable, temporary, none, not-dnssec, resolver-untrusted
    dane_hosts: tuple[DaneHostRecord, ...] = ()


@dataclass(frozen=True)
class HoldFacts:
    """Why a hold's recipients were held: each failing domain's assessment, and the upstream's
    replies for recipients it refused when the rest were relayed."""

    assessments: tuple[AssessmentRecord, ...] = ()
    upstream_refusals: Mapping[str, str] = field(default_factory=dict)  # recipient -> reply
    # Direct delivery that gave up: recipient -> a line per MX host tried and why it failed.
    delivery_hosts: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def assessment(self, domain: str) -> AssessmentRecord | None:
        for record in self.assessments:
            if record.domain == domain:
                return record
        return None
