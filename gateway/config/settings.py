"""Configuration: defaults, then one TOML file, then the environment, then validation.

Every key lives in a frozen dataclass below; its metadata carries the check that rejects an
impossible value. ``config/gateway.example.toml`` documents every key, and a test keeps the two
in step. The environment overrides a key as ``GATEWAY_<SECTION>_<KEY>`` (for example
``GATEWAY_DNS_TIMEOUT=2``); lists are comma-separated.
"""

from __future__ import annotations

import os
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from gateway.config.checks import (
    Check,
    address_list,
    domain_list,
    duration,
    listen_address,
    nameserver_list,
    network_list,
    non_negative,
    one_of,
    optional_address,
    port,
    positive,
    store_key,
    web_secret,
)
from gateway.core.model import Requirement, Transport
from gateway.errors import ConfigError

ENV_PREFIX = "GATEWAY_"
CONFIG_ENV = "GATEWAY_CONFIG"


def _check(check: Check, *, secret: bool = False, key: str = "") -> dict[str, Any]:
    return {"check": check, "secret": secret, "key": key}


def key_name(f: Any) -> str:
    """The key in the file: the field's name, unless it is a Python keyword such as ``from``."""
    return str(f.metadata.get("key") or f.name)


@dataclass(frozen=True)
class SmtpSettings:
    listen: str = field(default="127.0.0.1:10025", metadata=_check(listen_address))
    hostname: str = ""
    trusted_networks: tuple[str, ...] = field(
        default=("127.0.0.0/8", "::1/128"), metadata=_check(network_list)
    )
    max_message_size: int = field(default=52_428_800, metadata=_check(positive))
    max_recipients: int = field(default=100, metadata=_check(positive))
    max_connections: int = field(default=100, metadata=_check(positive))
    command_timeout: float = field(default=300.0, metadata=_check(positive))
    workers: int = field(default=1, metadata=_check(positive))


@dataclass(frozen=True)
class RelaySettings:
    host: str = "127.0.0.1"
    port: int = field(default=10026, metadata=_check(port))
    tls: str = field(default="none", metadata=_check(one_of("none", "starttls", "implicit")))
    ca_file: str = ""
    username: str = ""
    password: str = field(default="", metadata=_check(lambda _: None, secret=True))
    timeout: float = field(default=60.0, metadata=_check(positive))
    max_connections: int = field(default=8, metadata=_check(positive))


@dataclass(frozen=True)
class ClassifySettings:
    header: str = "X-Safeguarding"
    header_values: tuple[str, ...] = ("yes", "true", "1")
    subject_markers: tuple[str, ...] = ("SAFEGUARDING", "OFFICIAL-SENSITIVE", "SECURE", "ENCRYPT")
    sensitivity_labels: tuple[str, ...] = ()
    body_keywords: tuple[str, ...] = ()
    body_scan_bytes: int = field(default=1_048_576, metadata=_check(positive))
    body_scan_timeout: float = field(default=2.0, metadata=_check(positive))


@dataclass(frozen=True)
class DnsSettings:
    nameservers: tuple[str, ...] = field(default=(), metadata=_check(nameserver_list))
    timeout: float = field(default=5.0, metadata=_check(positive))
    trust_ad: bool = False
    max_concurrency: int = field(default=64, metadata=_check(positive))
    cache_size: int = field(default=10_000, metadata=_check(non_negative))


@dataclass(frozen=True)
class MtaStsSettings:
    https_port: int = field(default=443, metadata=_check(port))
    ca_file: str = ""
    allow_private_addresses: bool = False
    fetch_timeout: float = field(default=10.0, metadata=_check(positive))


@dataclass(frozen=True)
class AllowlistSettings:
    paths: tuple[str, ...] = ("allowlists/*.toml", "allowlists/*.txt")


TRANSPORT_LABELS = ("mta-sts-testing", "mta-sts-enforce", "dane")


@dataclass(frozen=True)
class PolicySettings:
    minimum_transport: str = field(
        default="mta-sts-enforce", metadata=_check(one_of(*TRANSPORT_LABELS))
    )
    require_tls_rpt: bool = False
    scope: str = field(default="flagged", metadata=_check(one_of("flagged", "all")))
    local_domains: tuple[str, ...] = field(default=(), metadata=_check(domain_list))
    on_dns_error: str = field(default="hold", metadata=_check(one_of("hold", "tempfail")))

    @property
    def requirement(self) -> Requirement:
        return Requirement(Transport.from_label(self.minimum_transport), self.require_tls_rpt)


@dataclass(frozen=True)
class StoreSettings:
    data_dir: str = "var"
    key_file: str = ""
    key: str = field(default="", metadata=_check(store_key, secret=True))


@dataclass(frozen=True)
class ReviewSettings:
    reviewers: tuple[str, ...] = field(default=(), metadata=_check(address_list))
    escalation_contacts: tuple[str, ...] = field(default=(), metadata=_check(address_list))
    escalate_after: str = field(default="4h", metadata=_check(duration))
    expire_after: str = field(default="7d", metadata=_check(duration))
    retention: str = field(default="30d", metadata=_check(duration))
    sweep_interval: str = field(default="1m", metadata=_check(duration))


@dataclass(frozen=True)
class NotifySettings:
    enabled: bool = True
    from_: str = field(default="", metadata=_check(optional_address, key="from"))
    include_subject: bool = False
    organisation: str = ""


@dataclass(frozen=True)
class LogSettings:
    level: str = field(default="info", metadata=_check(one_of("debug", "info", "warning", "error")))
    format: str = field(default="json", metadata=_check(one_of("json", "console")))


@dataclass(frozen=True)
class WebSettings:
    enabled: bool = True
    listen: str = field(default="127.0.0.1:8025", metadata=_check(listen_address))
    secret_key: str = field(default="", metadata=_check(web_secret, secret=True))
    session_max_age: str = field(default="8h", metadata=_check(duration))
    session_idle_timeout: str = field(default="1h", metadata=_check(duration))
    tls_cert: str = ""
    tls_key: str = ""
    metrics_token: str = field(default="", metadata=_check(web_secret, secret=True))


@dataclass(frozen=True)
class Settings:
    smtp: SmtpSettings = SmtpSettings()
    relay: RelaySettings = RelaySettings()
    classify: ClassifySettings = ClassifySettings()
    dns: DnsSettings = DnsSettings()
    mta_sts: MtaStsSettings = MtaStsSettings()
    allowlist: AllowlistSettings = AllowlistSettings()
    policy: PolicySettings = PolicySettings()
    store: StoreSettings = StoreSettings()
    review: ReviewSettings = ReviewSettings()
    notify: NotifySettings = NotifySettings()
    log: LogSettings = LogSettings()
    web: WebSettings = WebSettings()
    # Where relative paths are taken from: the config file's folder, else the working folder.
    base_dir: Path = field(default=Path(), compare=False)
    # The configuration file read, if any (worker processes read the same one).
    source: str = field(default="", compare=False)

    def path(self, value: str) -> Path:
        candidate = Path(value).expanduser()
        return candidate if candidate.is_absolute() else self.base_dir / candidate

    def redacted(self) -> dict[str, dict[str, Any]]:
        """The effective configuration for the start-up log, secrets hidden."""
        shown: dict[str, dict[str, Any]] = {}
        for name, _ in _sections():
            values = getattr(self, name)
            shown[name] = {
                key_name(f): "********"
                if f.metadata.get("secret")
                else _plain(getattr(values, f.name))
                for f in fields(values)
            }
        return shown


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


_NOT_SECTIONS = frozenset({"base_dir", "source"})


def _sections() -> list[tuple[str, Any]]:
    hints = typing.get_type_hints(Settings)
    return [(f.name, hints[f.name]) for f in fields(Settings) if f.name not in _NOT_SECTIONS]


def load(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Build the settings; raise ConfigError naming the key and the problem."""
    env = os.environ if environ is None else environ
    if path is None and env.get(CONFIG_ENV):
        path = env[CONFIG_ENV]
    document: dict[str, Any] = {}
    base_dir = Path.cwd()
    source = ""
    if path is not None:
        file = Path(path)
        try:
            document = tomllib.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(str(file), "no such file") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(str(file), f"cannot read: {exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(str(file), f"not valid TOML: {exc}") from exc
        base_dir = file.resolve().parent
        source = str(file.resolve())

    known = {name for name, _ in _sections()}
    for key in document:
        if key not in known:
            raise ConfigError(key, "unknown section")
    built: dict[str, Any] = {}
    for name, cls in _sections():
        table = document.get(name, {})
        if not isinstance(table, dict):
            raise ConfigError(name, "must be a table")
        built[name] = _build_section(name, cls, table, env)
    return Settings(**built, base_dir=base_dir, source=source)


def _build_section(name: str, cls: Any, table: dict[str, Any], env: Mapping[str, str]) -> Any:
    hints = typing.get_type_hints(cls)
    names = {key_name(f) for f in fields(cls)}
    for key in table:
        if key not in names:
            raise ConfigError(f"{name}.{key}", "unknown key")
    values: dict[str, Any] = {}
    for f in fields(cls):
        key = key_name(f)
        key_path = f"{name}.{key}"
        env_name = f"{ENV_PREFIX}{name}_{key}".upper()
        if env_name in env:
            value = _from_env(env[env_name], hints[f.name], f"{key_path} (from {env_name})")
        elif key in table:
            value = _coerce(table[key], hints[f.name], key_path)
        else:
            continue
        check = f.metadata.get("check")
        problem = check(value) if check is not None else None
        if problem:
            raise ConfigError(key_path, problem)
        values[f.name] = value
    return cls(**values)


def _coerce(value: Any, hint: Any, key_path: str) -> Any:
    """Check a TOML value against the field's type. TOML's types are exact, so no guessing:
    only an integer may stand for a float."""
    origin = typing.get_origin(hint)
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(key_path, "must be a list")
        (item_hint, _) = typing.get_args(hint)
        return tuple(_coerce(item, item_hint, f"{key_path}[{i}]") for i, item in enumerate(value))
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(key_path, "must be true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(key_path, "must be a whole number")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(key_path, "must be a number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(key_path, "must be a string")
        return value
    raise ConfigError(key_path, f"unsupported type {hint}")  # pragma: no cover


def _from_env(text: str, hint: Any, key_path: str) -> Any:
    origin = typing.get_origin(hint)
    if origin is tuple:
        items = [item.strip() for item in text.split(",") if item.strip()]
        (item_hint, _) = typing.get_args(hint)
        return tuple(_from_env(item, item_hint, key_path) for item in items)
    if hint is bool:
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(key_path, "must be true or false")
    if hint is int:
        if not text.strip().isdigit():
            raise ConfigError(key_path, "must be a whole number")
        return int(text)
    if hint is float:
        try:
            return float(text)
        except ValueError as exc:
            raise ConfigError(key_path, "must be a number") from exc
    return text


def keys() -> list[str]:
    """Every key path, for the documentation test."""
    return [f"{name}.{key_name(f)}" for name, cls in _sections() for f in fields(cls)]


__all__ = ["ConfigError", "Settings", "keys", "load"]
