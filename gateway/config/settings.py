"""Configuration: every section and key, with its default, its type and its check.

Every key lives in a frozen dataclass below, typed as what the rest of the gateway reads:
seconds, a ``HostPort``, an enum member, a ``Secret``; its metadata carries the check that
rejects an impossible value. ``check_across_keys`` refuses keys that contradict each other.
``config/gateway.example.toml`` documents every key, and a test keeps the two in step. The
settings are built from the file and the environment by ``loader.load``.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

from gateway.config import reading
from gateway.config.checks import (
    Check,
    address_list,
    domain_list,
    longer_than_zero,
    network_list,
    non_negative,
    optional_address,
    optional_listen,
    port,
    portal_url,
    positive,
    reason_list,
    store_key,
    under_data_initiation,
    web_secret,
    web_url,
)
from gateway.config.crosskeys import check_across_keys
from gateway.config.values import (
    DAY,
    HOUR,
    MINUTE,
    DirectDelivery,
    HostPort,
    LogFormat,
    LogLevel,
    MinimumTransport,
    OnDnsError,
    RelayTls,
    RequireTlsMode,
    Scope,
    Seconds,
    Secret,
    StoreBackend,
    describe_duration,
)
from gateway.core.model import Requirement
from gateway.errors import ConfigError

UNSET = Secret()  # the default of every secret: empty, and shown as empty


def _key(check: Check | None = None, *, key: str = "", default_port: int = 0) -> dict[str, Any]:
    """A field's metadata: the check of its value, its name in the file when that is a Python
    keyword, and the port an address without one gets."""
    return {"check": check, "key": key, "default_port": default_port}


def key_name(f: Any) -> str:
    """The key in the file: the field's name, unless it is a Python keyword such as ``from``."""
    return str(f.metadata.get("key") or f.name)


@dataclass(frozen=True)
class SmtpSettings:
    listen: HostPort = field(
        default=HostPort("127.0.0.1", 10025), metadata=_key(default_port=10025)
    )
    hostname: str = ""
    trusted_networks: tuple[str, ...] = field(
        default=("127.0.0.0/8", "::1/128"), metadata=_key(network_list)
    )
    max_message_size: int = field(default=52_428_800, metadata=_key(positive))
    max_recipients: int = field(default=100, metadata=_key(positive))
    max_connections: int = field(default=100, metadata=_key(positive))
    command_timeout: float = field(default=300.0, metadata=_key(positive))
    workers: int = field(default=1, metadata=_key(positive))
    # The DATA budget of each process (gateway.smtp.budget): memory grows with these, not
    # with message size x sessions.
    max_concurrent_data: int = field(default=12, metadata=_key(positive))
    max_concurrent_large: int = field(default=1, metadata=_key(positive))
    large_message_threshold: int = field(default=1_048_576, metadata=_key(positive))
    data_wait_timeout: float = field(default=60.0, metadata=_key(under_data_initiation))
    # Inbound TLS (RFC 3207 STARTTLS; RFC 8314 implicit TLS) and client identity.
    tls_cert: str = ""
    tls_key: str = ""
    implicit_tls_listen: str = field(default="", metadata=_key(optional_listen))
    require_tls: bool = False
    tls_exempt_networks: tuple[str, ...] = field(default=(), metadata=_key(network_list))
    trusted_client_names: tuple[str, ...] = field(default=(), metadata=_key(domain_list))
    client_ca_file: str = ""

    @property
    def implicit_tls_address(self) -> HostPort | None:
        return HostPort.parse(self.implicit_tls_listen, 465) if self.implicit_tls_listen else None


@dataclass(frozen=True)
class RelaySettings:
    host: str = "127.0.0.1"
    port: int = field(default=10026, metadata=_key(port))
    tls: RelayTls = RelayTls.NONE
    ca_file: str = ""
    username: str = ""
    password: Secret = UNSET
    timeout: float = field(default=60.0, metadata=_key(positive))
    max_connections: int = field(default=8, metadata=_key(positive))
    # The name the smarthost's certificate must carry; empty: [relay] host.
    tls_name: str = ""
    requiretls: RequireTlsMode = RequireTlsMode.WHEN_OFFERED


@dataclass(frozen=True)
class DeliverySettings:
    direct: DirectDelivery = DirectDelivery.NONE
    mx_port: int = field(default=25, metadata=_key(port))
    allow_private_addresses: bool = False
    ca_file: str = ""
    retry_after: Seconds = field(default=5 * MINUTE, metadata=_key(longer_than_zero))
    give_up_after: Seconds = field(default=4 * HOUR, metadata=_key(longer_than_zero))
    timeout: Seconds = field(default=MINUTE, metadata=_key(longer_than_zero))


@dataclass(frozen=True)
class ClassifySettings:
    header: str = "X-Safeguarding"
    header_values: tuple[str, ...] = ("yes", "true", "1")
    subject_markers: tuple[str, ...] = ("SAFEGUARDING", "OFFICIAL-SENSITIVE", "SECURE", "ENCRYPT")
    sensitivity_labels: tuple[str, ...] = ()
    body_keywords: tuple[str, ...] = ()
    body_scan_bytes: int = field(default=1_048_576, metadata=_key(positive))
    body_scan_timeout: float = field(default=2.0, metadata=_key(positive))


@dataclass(frozen=True)
class DnsSettings:
    nameservers: tuple[HostPort, ...] = field(default=(), metadata=_key(default_port=53))
    timeout: float = field(default=5.0, metadata=_key(positive))
    trust_ad: bool = False
    max_concurrency: int = field(default=64, metadata=_key(positive))
    cache_size: int = field(default=10_000, metadata=_key(non_negative))
    # A domain's facts reused for this long at most (and never past a TTL); 0: off.
    facts_cache_seconds: float = field(default=5.0, metadata=_key(non_negative))


@dataclass(frozen=True)
class MtaStsSettings:
    https_port: int = field(default=443, metadata=_key(port))
    ca_file: str = ""
    allow_private_addresses: bool = False
    fetch_timeout: float = field(default=10.0, metadata=_key(positive))


@dataclass(frozen=True)
class AllowlistSettings:
    paths: tuple[str, ...] = ("allowlists/*.toml", "allowlists/*.txt")


@dataclass(frozen=True)
class PolicySettings:
    minimum_transport: MinimumTransport = MinimumTransport.MTA_STS_ENFORCE
    require_tls_rpt: bool = False
    scope: Scope = Scope.FLAGGED
    local_domains: tuple[str, ...] = field(default=(), metadata=_key(domain_list))
    on_dns_error: OnDnsError = OnDnsError.HOLD

    @property
    def requirement(self) -> Requirement:
        return Requirement(self.minimum_transport.transport, self.require_tls_rpt)


@dataclass(frozen=True)
class StoreSettings:
    data_dir: str = "var"
    key_file: str = ""
    # Keys that open bodies sealed before a rotation (``gateway store rotate-key``); never seal.
    old_key_files: tuple[str, ...] = ()
    key: Secret = field(default=UNSET, metadata=_key(store_key))
    backend: StoreBackend = StoreBackend.SQLITE
    # A libpq connection string or URI; a Secret, since it may carry the password.
    dsn: Secret = UNSET
    pool_size: int = field(default=8, metadata=_key(positive))
    statement_timeout: Seconds = field(default=10.0, metadata=_key(longer_than_zero))
    connect_timeout: Seconds = field(default=5.0, metadata=_key(longer_than_zero))


@dataclass(frozen=True)
class AuditSettings:
    key_file: str = ""
    key: Secret = field(default=UNSET, metadata=_key(store_key))
    head_interval: Seconds = field(default=HOUR, metadata=_key(longer_than_zero))
    witness_file: str = ""
    witnesses: tuple[str, ...] = field(default=(), metadata=_key(address_list))
    witness_every: Seconds = field(default=DAY, metadata=_key(longer_than_zero))


@dataclass(frozen=True)
class ReviewSettings:
    reviewers: tuple[str, ...] = field(default=(), metadata=_key(address_list))
    escalation_contacts: tuple[str, ...] = field(default=(), metadata=_key(address_list))
    escalate_after: Seconds = field(default=4 * HOUR, metadata=_key(longer_than_zero))
    expire_after: Seconds = field(default=7 * DAY, metadata=_key(longer_than_zero))
    retention: Seconds = field(default=30 * DAY, metadata=_key(longer_than_zero))
    sweep_interval: Seconds = field(default=MINUTE, metadata=_key(longer_than_zero))


@dataclass(frozen=True)
class NotifySettings:
    enabled: bool = True
    from_: str = field(default="", metadata=_key(optional_address, key="from"))
    include_subject: bool = False
    confirm_delivery: bool = False
    organisation: str = ""


@dataclass(frozen=True)
class LogSettings:
    level: LogLevel = LogLevel.INFO
    format: LogFormat = LogFormat.JSON


@dataclass(frozen=True)
class WebSettings:
    enabled: bool = True
    listen: HostPort = field(default=HostPort("127.0.0.1", 8025), metadata=_key(default_port=8025))
    secret_key: Secret = field(default=UNSET, metadata=_key(web_secret))
    session_max_age: Seconds = field(default=8 * HOUR, metadata=_key(longer_than_zero))
    session_idle_timeout: Seconds = field(default=HOUR, metadata=_key(longer_than_zero))
    tls_cert: str = ""
    tls_key: str = ""
    metrics_token: Secret = field(default=UNSET, metadata=_key(web_secret))
    # Reverse proxies whose X-Forwarded-For and X-Forwarded-Proto are believed; none by default.
    trusted_proxies: tuple[str, ...] = field(default=(), metadata=_key(network_list))
    # Where reviewers reach the web UI (behind its proxy): notices then link to each hold.
    public_url: str = field(default="", metadata=_key(web_url))


@dataclass(frozen=True)
class SecureLinkSettings:
    # Reason codes for which the gateway sends by secure link itself and tells the reviewers:
    # a hold is sent by link at once when every reason of every held recipient is listed here.
    automatic_for: tuple[str, ...] = field(default=(), metadata=_key(reason_list))
    # A link nobody has opened after this long: the sender and the reviewers are told.
    unopened_after: Seconds = field(default=2 * DAY, metadata=_key(longer_than_zero))


@dataclass(frozen=True)
class PortalSettings:
    """The recipients' side of a secure link: its own listener, never the reviewer UI."""

    enabled: bool = False
    listen: HostPort = field(default=HostPort("127.0.0.1", 8026), metadata=_key(default_port=8026))
    # The address recipients open links at (behind its proxy); needed to send any link.
    public_url: str = field(default="", metadata=_key(portal_url))
    tls_cert: str = ""
    tls_key: str = ""
    link_lifetime: Seconds = field(default=14 * DAY, metadata=_key(longer_than_zero))
    # Signs the portal's cookies; the same on every node. Made in data_dir when unset.
    secret_key: Secret = field(default=UNSET, metadata=_key(web_secret))
    trusted_proxies: tuple[str, ...] = field(default=(), metadata=_key(network_list))


@dataclass(frozen=True)
class Settings:
    smtp: SmtpSettings = SmtpSettings()
    relay: RelaySettings = RelaySettings()
    delivery: DeliverySettings = DeliverySettings()
    classify: ClassifySettings = ClassifySettings()
    dns: DnsSettings = DnsSettings()
    mta_sts: MtaStsSettings = MtaStsSettings()
    allowlist: AllowlistSettings = AllowlistSettings()
    policy: PolicySettings = PolicySettings()
    store: StoreSettings = StoreSettings()
    review: ReviewSettings = ReviewSettings()
    audit: AuditSettings = AuditSettings()
    notify: NotifySettings = NotifySettings()
    log: LogSettings = LogSettings()
    web: WebSettings = WebSettings()
    secure_link: SecureLinkSettings = SecureLinkSettings()
    portal: PortalSettings = PortalSettings()
    # Where relative paths are taken from: the config file's folder, else the working folder.
    base_dir: Path = field(default=Path(), compare=False)
    # The configuration file read, if any (worker processes read the same one).
    source: str = field(default="", compare=False)

    def path(self, value: str) -> Path:
        candidate = Path(value).expanduser()
        return candidate if candidate.is_absolute() else self.base_dir / candidate

    def redacted(self) -> dict[str, dict[str, Any]]:
        """The effective configuration for the start-up log: durations and addresses as they
        are written, a secret as "********" when it is set and "" when it is not."""
        shown: dict[str, dict[str, Any]] = {}
        for name, cls in sections():
            values = getattr(self, name)
            hints = typing.get_type_hints(cls, include_extras=True)
            shown[name] = {
                key_name(f): _shown(getattr(values, f.name), hints[f.name]) for f in fields(values)
            }
        return shown


def _shown(value: Any, hint: Any) -> Any:
    if isinstance(value, tuple):
        return [_shown(item, None) for item in value]
    if reading.is_duration(hint):
        return describe_duration(value)
    if isinstance(value, HostPort | Secret):
        return str(value)
    if isinstance(value, StrEnum):
        return value.value
    return value


_NOT_SECTIONS = frozenset({"base_dir", "source"})


def sections() -> list[tuple[str, Any]]:
    hints = typing.get_type_hints(Settings)
    return [(f.name, hints[f.name]) for f in fields(Settings) if f.name not in _NOT_SECTIONS]


__all__ = [
    "AllowlistSettings",
    "AuditSettings",
    "ClassifySettings",
    "ConfigError",
    "DeliverySettings",
    "DnsSettings",
    "LogSettings",
    "MtaStsSettings",
    "NotifySettings",
    "PolicySettings",
    "RelaySettings",
    "ReviewSettings",
    "Settings",
    "SmtpSettings",
    "StoreSettings",
    "WebSettings",
    "check_across_keys",
    "sections",
]
