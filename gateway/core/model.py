"""Value types shared by the core and the adapters. All frozen; no behaviour beyond the obvious.

The adapters turn DNS answers and HTTPS fetches into these facts; ``core.policy`` turns facts
into verdicts. Nothing here touches the network, the disk or the clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Generic, TypeVar

T = TypeVar("T")


class Reason(StrEnum):
    """Why a recipient domain is not (yet) secure. Named after protocol outcomes; these names
    appear in logs, `gateway check`, the audit trail and the README's table."""

    NOT_ALLOWLISTED = "not-allowlisted"
    ALLOWLIST_EXPIRED = "allowlist-expired"
    NO_SUCH_DOMAIN = "no-such-domain"
    NULL_MX = "null-mx"
    STS_NO_RECORD = "sts-no-record"
    STS_MULTIPLE_RECORDS = "sts-multiple-records"
    STS_RECORD_INVALID = "sts-record-invalid"
    STS_POLICY_FETCH_ERROR = "sts-policy-fetch-error"
    STS_WEBPKI_INVALID = "sts-webpki-invalid"
    STS_POLICY_INVALID = "sts-policy-invalid"
    STS_MODE_TESTING = "sts-mode-testing"
    STS_MODE_NONE = "sts-mode-none"
    STS_MX_MISMATCH = "sts-mx-mismatch"
    NO_TLS_RPT = "no-tls-rpt"
    DNS_TEMPORARY_ERROR = "dns-temporary-error"
    DANE_UNUSABLE = "dane-unusable"
    DANE_NOT_DNSSEC = "dane-not-dnssec"
    DANE_NO_TLSA = "dane-no-tlsa"
    DANE_RESOLVER_UNTRUSTED = "dane-resolver-untrusted"
    # Message-level reasons, beside the domain's.
    SENDER_NOT_ALLOWED = "sender-not-allowed"
    RECIPIENT_INVALID = "recipient-invalid"
    UPSTREAM_REFUSED = "upstream-refused"
    # Direct delivery gave up ([delivery] give_up_after): no MX host could be authenticated
    # as the verdict required (RFC 8461 §5, RFC 7672 §2.2), or none took the message.
    DELIVERY_TLS_FAILED = "delivery-tls-failed"
    DELIVERY_FAILED = "delivery-failed"


class Transport(IntEnum):
    """Security levels of a route to a recipient, ordered so they compare against a minimum."""

    NONE = 0
    MTA_STS_TESTING = 1
    MTA_STS_ENFORCE = 2
    DANE = 3

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", "-")

    @classmethod
    def from_label(cls, label: str) -> Transport:
        for level in cls:
            if level.label == label:
                return level
        raise ValueError(label)


# --- DNS --------------------------------------------------------------------------------------


class DnsStatus(StrEnum):
    """The outcomes TRANSPORT-SECURITY.md keeps apart. A temporary error is never "no record"."""

    FOUND = "found"
    NXDOMAIN = "nxdomain"
    NODATA = "nodata"
    TEMPORARY = "temporary"


@dataclass(frozen=True)
class MxRecord:
    preference: int
    host: str  # A-labels, lower case, no trailing dot; "" for the null MX target "."


@dataclass(frozen=True)
class TlsaRecord:
    usage: int
    selector: int
    mtype: int
    data: bytes

    def __str__(self) -> str:
        return f"{self.usage} {self.selector} {self.mtype} {self.data.hex()}"


@dataclass(frozen=True)
class DnsAnswer(Generic[T]):
    status: DnsStatus
    records: tuple[T, ...] = ()
    # True when the answer came with the AD bit from a resolver the operator trusts.
    authenticated: bool = False
    error: str = ""
    # Seconds the answer may still be used (its RRset's TTL; for NXDOMAIN and NODATA the
    # negative-caching TTL, min(SOA TTL, SOA MINIMUM): RFC 2308 §5); None when unknown. How
    # fresh an answer is, not what it says: two answers with the same records are equal.
    ttl: float | None = field(default=None, compare=False)

    @property
    def negative(self) -> bool:
        return self.status in (DnsStatus.NXDOMAIN, DnsStatus.NODATA)


# --- MTA-STS ----------------------------------------------------------------------------------


class StsMode(StrEnum):
    ENFORCE = "enforce"
    TESTING = "testing"
    NONE = "none"


@dataclass(frozen=True)
class StsRecord:
    id: str
    extensions: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StsPolicy:
    mode: StsMode
    max_age: int
    mx: tuple[str, ...]
    extensions: Mapping[str, str] = field(default_factory=dict)


class RecordStatus(StrEnum):
    FOUND = "found"
    NONE = "none"
    MULTIPLE = "multiple"
    INVALID = "invalid"
    TEMPORARY = "temporary"


class PolicyStatus(StrEnum):
    OK = "ok"
    NOT_FETCHED = "not-fetched"
    FETCH_ERROR = "fetch-error"
    WEBPKI_INVALID = "webpki-invalid"
    INVALID = "invalid"


class PolicySource(StrEnum):
    FETCHED = "fetched"
    CACHE = "cache"
    NONE = ""


@dataclass(frozen=True)
class StsRecordFacts:
    status: RecordStatus
    id: str = ""
    error: str = ""


@dataclass(frozen=True)
class StsPolicyFacts:
    status: PolicyStatus
    policy: StsPolicy | None = None
    source: PolicySource = PolicySource.NONE
    # A failed fetch that may pass (timeout, refused connection, 5xx); fail closed either way.
    temporary: bool = False
    error: str = ""
    fetched_at: float | None = None  # seconds since the epoch
    expires_at: float | None = None


# --- MX, TLS-RPT, DANE ------------------------------------------------------------------------


class MxStatus(StrEnum):
    FOUND = "found"
    IMPLICIT = "implicit"  # no MX: the domain itself is the mail host (RFC 5321 §5.1)
    NULL = "null"  # RFC 7505
    NXDOMAIN = "nxdomain"
    TEMPORARY = "temporary"


@dataclass(frozen=True)
class MxFacts:
    status: MxStatus
    hosts: tuple[str, ...] = ()  # by preference; A-labels, no trailing dot
    dnssec: bool = False
    error: str = ""


@dataclass(frozen=True)
class TlsRptFacts:
    status: RecordStatus
    rua: tuple[str, ...] = ()
    error: str = ""


class DaneHostStatus(StrEnum):
    USABLE = "usable"  # at least one usable TLSA record (RFC 7672 §3.1)
    UNUSABLE = "unusable"  # TLSA records, none usable: TLS mandatory, unauthenticated
    NONE = "none"  # DNSSEC-secure denial of TLSA records
    INSECURE = "insecure"  # the host's addresses or TLSA answer are not DNSSEC-secure
    TEMPORARY = "temporary"  # secure host, TLSA lookup failed: the host is unusable


@dataclass(frozen=True)
class DaneHostFacts:
    host: str
    status: DaneHostStatus
    tlsa: tuple[TlsaRecord, ...] = ()
    error: str = ""


@dataclass(frozen=True)
class DaneFacts:
    # DANE needs a validating resolver the operator trusts; without one it is unavailable.
    resolver_trusted: bool
    hosts: tuple[DaneHostFacts, ...] = ()


@dataclass(frozen=True)
class DomainFacts:
    domain: str
    mx: MxFacts
    sts_record: StsRecordFacts
    sts_policy: StsPolicyFacts
    tls_rpt: TlsRptFacts
    dane: DaneFacts
    timings_ms: Mapping[str, float] = field(default_factory=dict)

    def dane_host(self, host: str) -> DaneHostFacts | None:
        for facts in self.dane.hosts:
            if facts.host == host:
                return facts
        return None


# --- Verdicts ---------------------------------------------------------------------------------


class Verdict(StrEnum):
    SECURE = "secure"
    NOT_SECURE = "not-secure"
    UNDETERMINED = "undetermined"  # a temporary failure stands between us and an answer


@dataclass(frozen=True)
class Requirement:
    """What the organisation asks of a recipient's transport ([policy] in the config)."""

    minimum: Transport = Transport.MTA_STS_ENFORCE
    require_tls_rpt: bool = False


@dataclass(frozen=True)
class DomainVerdict:
    domain: str
    verdict: Verdict
    reasons: tuple[Reason, ...] = ()
    transport: Transport = Transport.NONE  # the level every MX host reached

    @property
    def secure(self) -> bool:
        return self.verdict is Verdict.SECURE


class Action(StrEnum):
    RELAY = "relay"
    HOLD = "hold"
    TEMPFAIL = "tempfail"  # answer 4xx for the whole message: the sending MTA retries


@dataclass(frozen=True)
class RecipientDecision:
    recipient: str
    domain: str
    action: Action
    reasons: tuple[Reason, ...] = ()
    transport: Transport = Transport.NONE
