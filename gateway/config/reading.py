"""Reading one setting: a TOML value or an environment variable's text, into the field's type.

The field's type says how: ``bool``, ``int``, ``float`` and ``str`` as they are; ``Seconds``
from a duration ("4h"); ``HostPort`` from "ip:port"; ``Secret`` from text; a ``StrEnum`` from
one of its values; ``tuple[X, ...]`` from a TOML list or comma-separated text. TOML's types are
exact, so nothing is guessed: only an integer may stand for a float.
"""

from __future__ import annotations

import typing
from enum import StrEnum
from typing import Any

from gateway.config.values import HostPort, Secret, _DurationText, parse_duration
from gateway.errors import ConfigError

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def is_duration(hint: Any) -> bool:
    return typing.get_origin(hint) is typing.Annotated and _DurationText in hint.__metadata__


def _is_text(hint: Any) -> bool:
    """Types written as a TOML string."""
    return (
        hint in (str, HostPort, Secret)
        or is_duration(hint)
        or (isinstance(hint, type) and issubclass(hint, StrEnum))
    )


def from_toml(value: Any, hint: Any, key_path: str, default_port: int = 0) -> Any:
    if typing.get_origin(hint) is tuple:
        if not isinstance(value, list):
            raise ConfigError(key_path, "must be a list")
        (item_hint, _) = typing.get_args(hint)
        if not _is_text(item_hint):
            return tuple(from_toml(v, item_hint, f"{key_path}[{i}]") for i, v in enumerate(value))
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise ConfigError(f"{key_path}[{i}]", "must be a string")
        return _text_items(value, item_hint, key_path, default_port)
    if is_duration(hint) and not isinstance(value, str):
        raise ConfigError(key_path, "must be a duration such as 30m, 4h or 7d (a string)")
    if _is_text(hint):
        if not isinstance(value, str):
            raise ConfigError(key_path, "must be a string")
        return parse_text(value, hint, key_path, default_port)
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
    raise ConfigError(key_path, f"unsupported type {hint}")  # pragma: no cover


def from_env(text: str, hint: Any, key_path: str, default_port: int = 0) -> Any:
    if typing.get_origin(hint) is tuple:
        items = [item.strip() for item in text.split(",") if item.strip()]
        (item_hint, _) = typing.get_args(hint)
        if not _is_text(item_hint):
            return tuple(from_env(item, item_hint, key_path) for item in items)
        return _text_items(items, item_hint, key_path, default_port)
    if _is_text(hint):
        # A password may begin or end with a space; an address or a duration may not.
        given = text if hint in (str, Secret) else text.strip()
        return parse_text(given, hint, key_path, default_port)
    if hint is bool:
        lowered = text.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
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
    raise ConfigError(key_path, f"unsupported type {hint}")  # pragma: no cover


def _text_items(
    values: list[str], item_hint: Any, key_path: str, default_port: int
) -> tuple[Any, ...]:
    items = []
    for value in values:
        try:
            items.append(parse_text(value, item_hint, key_path, default_port))
        except ConfigError as exc:
            # Name the item: "dns.nameservers: 'ns1.test': not an IP address".
            raise ConfigError(key_path, f"{value!r}: {exc.problem}") from exc
    return tuple(items)


def parse_text(text: str, hint: Any, key_path: str, default_port: int = 0) -> Any:
    """A setting written as text, into its type."""
    if is_duration(hint):
        try:
            return parse_duration(text)
        except ValueError as exc:
            raise ConfigError(key_path, "must be a duration such as 30m, 4h or 7d") from exc
    if hint is HostPort:
        try:
            return HostPort.parse(text, default_port)
        except ValueError as exc:
            raise ConfigError(key_path, str(exc)) from exc
    if hint is Secret:
        return Secret(text)
    if isinstance(hint, type) and issubclass(hint, StrEnum):
        try:
            return hint(text)
        except ValueError as exc:
            choices = ", ".join(member.value for member in hint)
            raise ConfigError(key_path, f"must be one of {choices}") from exc
    return text
