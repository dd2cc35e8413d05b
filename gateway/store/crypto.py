"""Encryption of held messages, queued bodies and notices at rest: AES-256-GCM (``cryptography``).

A blob is a version byte, then (version 2) the 4-byte id of the key that sealed it, a random
96-bit nonce, and the ciphertext with its tag. Version 1 blobs (older releases) carry no key
id and are opened by trying each key. The associated data is the blob's owner (a hold id,
``queue:<id>``, ``notice:<id>``), so a blob moved to another's name fails to decrypt instead of
showing the wrong message.

A ``Sealer`` holds a key ring: the current key seals, every key of the ring opens. That is what
makes a key rotation safe (``gateway store rotate-key``): while bodies are re-sealed one by one,
each is readable under one key or the other, and the gateway keeps writing under the new one.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.config.checks import decode_key
from gateway.config.settings import Settings
from gateway.errors import ConfigError, DecryptError
from gateway.store.keyfile import read_key_file
from gateway.store.safeio import create_exclusive, private_dir

VERSION_1 = b"\x01"  # VERSION_1 + nonce + ciphertext
VERSION = b"\x02"  # VERSION + key id + nonce + ciphertext
KEY_ID_BYTES = 4
NONCE_BYTES = 12
KEY_FILE = "store.key"


def key_id(key: bytes) -> str:
    """A short public name of a key (hex), for blobs, manifests and messages: a hash, from
    which the key cannot be learnt."""
    return hashlib.sha256(b"gateway store key id\x00" + key).digest()[:KEY_ID_BYTES].hex()


def blob_key_id(blob: bytes) -> str | None:
    """The id of the key that sealed ``blob``; None for a version 1 blob (no id in it)."""
    if blob[:1] == VERSION:
        return blob[1 : 1 + KEY_ID_BYTES].hex()
    return None


class Sealer:
    def __init__(self, key: bytes, old_keys: Sequence[bytes] = ()) -> None:
        if len(key) != 32 or any(len(old) != 32 for old in old_keys):
            raise ValueError("AES-256 needs a 32-byte key")
        self._current = key_id(key)
        self._ring = {key_id(k): AESGCM(k) for k in (*old_keys, key)}

    @property
    def current_id(self) -> str:
        return self._current

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset(self._ring)

    def seal(self, owner: str, plaintext: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        head = VERSION + bytes.fromhex(self._current)
        return head + nonce + self._ring[self._current].encrypt(nonce, plaintext, owner.encode())

    def is_current(self, blob: bytes) -> bool:
        """Whether ``blob`` is sealed under the current key (nothing to re-seal)."""
        return blob_key_id(blob) == self._current

    def open(self, owner: str, blob: bytes) -> bytes:
        if blob[:1] == VERSION:
            found = self._ring.get(blob_key_id(blob) or "")
            if found is None:
                raise DecryptError(f"{owner}: sealed under key {blob_key_id(blob)}, not given")
            return self._decrypt(owner, found, blob[1 + KEY_ID_BYTES :])
        if blob[:1] != VERSION_1:
            raise DecryptError(f"{owner}: unknown blob format")
        for aead in self._ring.values():
            try:
                return aead.decrypt(
                    blob[1 : 1 + NONCE_BYTES], blob[1 + NONCE_BYTES :], owner.encode()
                )
            except InvalidTag:
                continue
        raise DecryptError(f"{owner}: wrong key or damaged blob")

    @staticmethod
    def _decrypt(owner: str, aead: AESGCM, rest: bytes) -> bytes:
        try:
            return aead.decrypt(rest[:NONCE_BYTES], rest[NONCE_BYTES:], owner.encode())
        except InvalidTag as exc:
            raise DecryptError(f"{owner}: wrong key or damaged blob") from exc

    def reseal(self, owner: str, blob: bytes) -> bytes:
        """``blob`` under the current key (DecryptError if no key of the ring opens it)."""
        return self.seal(owner, self.open(owner, blob))


def load_sealer(settings: Settings, data_dir: Path, make: bool = True) -> Sealer:
    """The key ring of the configuration: ``load_key`` seals, [store] old_key_files open."""
    old = [_read_key(settings.path(f), "store.old_key_files") for f in settings.store.old_key_files]
    return Sealer(load_key(settings, data_dir, make), old)


def load_key(settings: Settings, data_dir: Path, make: bool = True) -> bytes:
    """The store key: [store] key (GATEWAY_STORE_KEY), else key_file, else <data_dir>/store.key,
    created with mode 0600 at first start (not with ``make`` False: a restore)."""
    if settings.store.key:
        key = decode_key(settings.store.key.reveal())
        assert key is not None  # validated with the configuration
        return key
    if settings.store.key_file:
        path = settings.path(settings.store.key_file)
        return _read_key(path)
    path = data_dir / KEY_FILE
    if not make and not path.exists():
        raise ConfigError("store.key_file", f"{path} is missing: put the store key back first")
    return _read_key(path, make=lambda: os.urandom(32).hex().encode() + b"\n")


def uses_default_key(settings: Settings) -> bool:
    """Whether the store key is <data_dir>/store.key, made by the gateway beside the data: a
    disk that dies takes both, and every held message with them."""
    return not settings.store.key and not settings.store.key_file


def new_key_file(path: Path) -> str:
    """Write a fresh key to ``path`` (0600; refused if it exists); its id."""
    key = os.urandom(32)
    private_dir(path.parent)
    if not create_exclusive(path, key.hex().encode() + b"\n", 0o600):
        raise FileExistsError(f"{path} exists: give a new file")
    return key_id(key)


def _read_key(
    path: Path, setting: str = "store.key_file", make: Callable[[], bytes] | None = None
) -> bytes:
    key = decode_key(read_key_file(path, setting, make))
    if key is None:
        raise ConfigError(setting, f"{path} must hold 32 bytes as 64 hex digits or base64")
    return key
