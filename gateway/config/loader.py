"""Configuration read in order: defaults, then one TOML file, then the environment, then
validation, into the frozen ``Settings`` (``settings``).

Apart from ``settings`` because the sections say what each key is, and this says where its
value comes from: the file named by the caller or by ``GATEWAY_CONFIG``, and the environment,
which overrides a key as ``GATEWAY_<SECTION>_<KEY>`` (for example ``GATEWAY_DNS_TIMEOUT=2``);
lists are comma-separated. Every check, the ones across keys included, runs in ``load``.
"""

from __future__ import annotations

import os
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from gateway.config import reading
from gateway.config.crosskeys import check_across_keys
from gateway.config.settings import Settings, key_name, sections
from gateway.errors import ConfigError

ENV_PREFIX = "GATEWAY_"
CONFIG_ENV = "GATEWAY_CONFIG"


def load(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Build the settings; raise ConfigError naming the key and the problem. Every check,
    the ones across keys included, runs here: before any socket is bound or worker started."""
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

    known = {name for name, _ in sections()}
    for key in document:
        if key not in known:
            raise ConfigError(key, "unknown section")
    built: dict[str, Any] = {}
    for name, cls in sections():
        table = document.get(name, {})
        if not isinstance(table, dict):
            raise ConfigError(name, "must be a table")
        built[name] = _build_section(name, cls, table, env)
    settings = Settings(**built, base_dir=base_dir, source=source)
    check_across_keys(settings)
    return settings


def _build_section(name: str, cls: Any, table: dict[str, Any], env: Mapping[str, str]) -> Any:
    hints = typing.get_type_hints(cls, include_extras=True)
    names = {key_name(f) for f in fields(cls)}
    for key in table:
        if key not in names:
            raise ConfigError(f"{name}.{key}", "unknown key")
    values: dict[str, Any] = {}
    for f in fields(cls):
        key = key_name(f)
        key_path = f"{name}.{key}"
        env_name = f"{ENV_PREFIX}{name}_{key}".upper()
        default_port = f.metadata.get("default_port", 0)
        if env_name in env:
            where = f"{key_path} (from {env_name})"
            value = reading.from_env(env[env_name], hints[f.name], where, default_port)
        elif key in table:
            value = reading.from_toml(table[key], hints[f.name], key_path, default_port)
        else:
            continue
        check = f.metadata.get("check")
        problem = check(value) if check is not None else None
        if problem:
            raise ConfigError(key_path, problem)
        values[f.name] = value
    return cls(**values)


def keys() -> list[str]:
    """Every key path, for the documentation test."""
    return [f"{name}.{key_name(f)}" for name, cls in sections() for f in fields(cls)]
