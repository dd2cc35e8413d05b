"""Secret files in the data directory (the store key, the web signing key): made at first
start with mode 0600, and refused when group or others may read them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from gateway.errors import ConfigError
from gateway.store.safeio import create_exclusive, private_dir


def read_key_file(path: Path, key: str, make: Callable[[], bytes] | None = None) -> str:
    """The text of the secret file at ``path``, stripped. With ``make``, a missing file is
    created from what it returns (once, even when several processes start together).
    Problems are a ``ConfigError`` naming the setting ``key``."""
    if make is not None and not path.exists():
        private_dir(path.parent)
        create_exclusive(path, make(), 0o600)
    try:
        text = path.read_text(encoding="ascii")
        mode = path.stat().st_mode
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(key, f"cannot read {path}: {exc}") from exc
    if mode & 0o077:
        raise ConfigError(key, f"{path} must not be readable by group or others (chmod 600)")
    return text.strip()
