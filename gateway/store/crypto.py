"""Encryption of held messages at rest: AES-256-GCM (``cryptography``).

Each blob is a version byte, a random 96-bit nonce, then the ciphertext with its tag. The hold
id is the associated data, so a blob moved to another hold's name fails to decrypt instead of
showing the wrong message.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.config.checks import decode_key
from gateway.config.settings import Settings
from gateway.errors import ConfigError, DecryptError
from gateway.store.keyfile import read_key_file

VERSION = b"\x01"
NONCE_BYTES = 12
KEY_FILE = "store.key"


class Sealer:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("AES-256 needs a 32-byte key")
        self._aead = AESGCM(key)

    def seal(self, hold_id: str, plaintext: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return VERSION + nonce + self._aead.encrypt(nonce, plaintext, hold_id.encode())

    def open(self, hold_id: str, blob: bytes) -> bytes:
        if blob[:1] != VERSION:
            raise DecryptError(f"hold {hold_id}: unknown blob format")
        nonce, ciphertext = blob[1 : 1 + NONCE_BYTES], blob[1 + NONCE_BYTES :]
        try:
            return self._aead.decrypt(nonce, ciphertext, hold_id.encode())
        except InvalidTag as exc:
            raise DecryptError(f"hold {hold_id}: wrong key or damaged blob") from exc


def load_key(settings: Settings, data_dir: Path) -> bytes:
    """The store key: [store] key (GATEWAY_STORE_KEY), else key_file, else <data_dir>/store.key,
    created with mode 0600 at first start."""
    if settings.store.key:
        key = decode_key(settings.store.key.reveal())
        assert key is not None  # validated with the configuration
        return key
    if settings.store.key_file:
        path = settings.path(settings.store.key_file)
        return _read_key(path)
    return _read_key(data_dir / KEY_FILE, lambda: os.urandom(32).hex().encode() + b"\n")


def _read_key(path: Path, make: Callable[[], bytes] | None = None) -> bytes:
    key = decode_key(read_key_file(path, "store.key_file", make))
    if key is None:
        raise ConfigError("store.key_file", f"{path} must hold 32 bytes as 64 hex digits or base64")
    return key
