"""The audit chain's key (HMAC-SHA256), kept outside the database like the store key: whoever
can write the database but not read this key cannot re-seal an edited trail."""

from __future__ import annotations

import os
from pathlib import Path

from gateway.config.checks import decode_key
from gateway.config.settings import Settings
from gateway.errors import ConfigError
from gateway.store.keyfile import read_key_file

KEY_FILE = "audit.key"


def default_key(data_dir: Path) -> bytes:
    """<data_dir>/audit.key, created with mode 0600 at first start."""
    return _read(data_dir / KEY_FILE, make=True)


def load_audit_key(settings: Settings, data_dir: Path) -> bytes:
    """[audit] key (GATEWAY_AUDIT_KEY), else key_file, else <data_dir>/audit.key."""
    if settings.audit.key:
        key = decode_key(settings.audit.key.reveal())
        assert key is not None  # validated with the configuration
        return key
    if settings.audit.key_file:
        return _read(settings.path(settings.audit.key_file), make=False)
    return default_key(data_dir)


def _read(path: Path, make: bool) -> bytes:
    def new() -> bytes:
        return os.urandom(32).hex().encode() + b"\n"

    key = decode_key(read_key_file(path, "audit.key_file", new if make else None))
    if key is None:
        raise ConfigError("audit.key_file", f"{path} must hold 32 bytes as 64 hex digits or base64")
    return key
