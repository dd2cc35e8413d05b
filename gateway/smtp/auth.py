"""SMTP AUTH (RFC 4954) with PLAIN (RFC 4616) and LOGIN, against ``submit`` accounts.

Offered only once the session is in TLS (RFC 4954 §4: never a password in the clear). The
check is the web sign-in's: the same accounts file and the same throttle
(``gateway.accounts.users.Throttle``), the attempt counted before the password is looked at,
so a hundred guesses sent at once are not all checked. argon2 is slow on purpose: every call
into the accounts file runs in a worker thread, off the event loop. Only an enabled account
with the ``submit`` role may submit; a reviewer's password is no key to the relay.
"""

from __future__ import annotations

import asyncio
import binascii
from base64 import b64decode
from dataclasses import dataclass

from aiosmtpd.smtp import SMTP

from gateway import logs
from gateway.accounts.users import Accounts, Role, Throttle, throttle_keys
from gateway.smtp.reply import SmtpReply

MECHANISMS = ("LOGIN", "PLAIN")

# RFC 4954 §6 and RFC 3463 / RFC 5248 codes.
AUTH_OK = SmtpReply(235, "2.7.0", "Authentication successful")
AUTH_FAILED = SmtpReply(535, "5.7.8", "Authentication credentials invalid")
AUTH_THROTTLED = SmtpReply(454, "4.7.0", "Too many failed attempts; try again later")
ENCRYPTION_REQUIRED = SmtpReply(
    538, "5.7.11", "Encryption required for requested authentication mechanism"
)
AUTH_UNAVAILABLE = SmtpReply(503, "5.5.1", "AUTH not available")
ALREADY_AUTHENTICATED = SmtpReply(503, "5.5.1", "Already authenticated")
UNKNOWN_MECHANISM = SmtpReply(504, "5.5.4", "Unrecognized authentication type")
AUTH_SYNTAX = SmtpReply(501, "5.5.2", "Syntax: AUTH mechanism [initial-response]")
AUTH_CANCELLED = SmtpReply(501, "5.7.0", "Authentication cancelled")
BAD_BASE64 = SmtpReply(501, "5.5.2", "Cannot decode the response")

_USERNAME = "VXNlcm5hbWU6"  # base64 "Username:"
_PASSWORD = "UGFzc3dvcmQ6"  # noqa: S105 - base64 "Password:", the LOGIN prompt
_MAX_RESPONSE = 4096


@dataclass(frozen=True)
class Credentials:
    name: str
    password: str


class SubmitAuth:
    """Checks AUTH credentials against the accounts file, throttled per name and address."""

    def __init__(self, accounts: Accounts, throttle: Throttle) -> None:
        self._accounts = accounts
        self._throttle = throttle
        self._log = logs.get("gateway.smtp")

    async def check(self, credentials: Credentials, client: str) -> tuple[str, SmtpReply]:
        """(the account name, 235) when the credentials are right; else ("", 535 or 454)."""
        name, password = credentials.name[:200], credentials.password
        keys = throttle_keys(name, client)
        wait = await asyncio.to_thread(self._throttle.attempt, keys)
        if wait > 0:
            self._failed(name, client, "throttled")
            return "", AUTH_THROTTLED
        user, why = await asyncio.to_thread(self._accounts.authenticate, name, password)
        if not why and user is not None and user.role is not Role.SUBMIT:
            why = "not-a-submit-account"
        if why or user is None:
            self._failed(name, client, why or "unknown-account")
            return "", AUTH_FAILED
        await asyncio.to_thread(self._throttle.succeeded, *keys)
        self._log.info("authenticated", user=user.name, client=client)
        return user.name, AUTH_OK

    def _failed(self, name: str, client: str, why: str) -> None:
        # ascii(): the name came from the client; the password is never logged.
        self._log.warning("authentication failed", user=ascii(name), client=client, why=why)


async def read_credentials(
    server: SMTP, mechanism: str, initial: str | None
) -> Credentials | SmtpReply:
    """The name and password a client gives with PLAIN or LOGIN (challenges sent as needed),
    or the reply that ends the exchange (already pushed for a cancelled challenge)."""
    if mechanism == "PLAIN":
        blob = await _response(server, "", initial)
        if isinstance(blob, SmtpReply):
            return blob
        parts = blob.split(b"\0")  # RFC 4616 §2: [authzid] NUL authcid NUL passwd
        if len(parts) != 3:
            return BAD_BASE64
        return _credentials(parts[1], parts[2])
    name = await _response(server, _USERNAME, initial)
    if isinstance(name, SmtpReply):
        return name
    password = await _response(server, _PASSWORD, None)
    if isinstance(password, SmtpReply):
        return password
    return _credentials(name, password)


async def _response(server: SMTP, challenge: str, initial: str | None) -> bytes | SmtpReply:
    if initial is not None:
        if initial == "=":  # RFC 4954 §4: an empty initial response
            return b""
        return _decode(initial.encode("ascii", "replace"))
    await server.push(f"334 {challenge}")
    line = await server._reader.readline()  # aiosmtpd's own reader, as its challenge_auth
    blob = line.strip()
    if blob == b"*":  # RFC 4954 §4: the client cancels
        return AUTH_CANCELLED
    return _decode(blob)


def _decode(blob: bytes) -> bytes | SmtpReply:
    if len(blob) > _MAX_RESPONSE:
        return BAD_BASE64
    try:
        return b64decode(blob, validate=True)
    except (binascii.Error, ValueError):
        return BAD_BASE64


def _credentials(name: bytes, password: bytes) -> Credentials | SmtpReply:
    try:
        return Credentials(name.decode("utf-8"), password.decode("utf-8"))
    except UnicodeDecodeError:
        return BAD_BASE64


__all__ = ["MECHANISMS", "Credentials", "SubmitAuth", "read_credentials"]
