"""What keeps the review pages safe to open: response headers, the signing key, CSRF tokens,
and file names that cannot break out of a Content-Disposition header.

Held mail is written by whoever sent it, so everything from a message is untrusted: the pages
escape it (Jinja2 autoescape), show it as text, and the headers below forbid scripts, frames,
remote content and form posts anywhere but here, in case an escape is ever missed.
"""

from __future__ import annotations

import hmac
import re
import secrets
import unicodedata
import urllib.parse
from pathlib import Path

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.config.settings import Settings
from gateway.errors import ConfigError
from gateway.store.keyfile import read_key_file

KEY_FILE = "web.key"

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), interest-cohort=()",
}
HSTS = "max-age=31536000"


def load_secret(settings: Settings, data_dir: Path) -> str:
    """[web] secret_key (GATEWAY_WEB_SECRET_KEY), else <data_dir>/web.key, created with mode
    0600 at first start; like the store key."""
    if settings.web.secret_key:
        return settings.web.secret_key.reveal()
    path = data_dir / KEY_FILE
    text = read_key_file(path, "web.secret_key", lambda: secrets.token_hex(32).encode() + b"\n")
    if len(text) < 32:
        raise ConfigError("web.secret_key", f"{path} must hold at least 32 characters")
    return text


class SecurityHeaders:
    """Adds the headers above to every response (a route may set its own stricter CSP), and
    HSTS when served over HTTPS. Pages are never cached: they show held mail."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        https = scope.get("scheme") == "https"
        # The stylesheet and icons hold no data: let the browser keep them for an hour.
        caching = "max-age=3600" if scope["path"].startswith("/static/") else "no-store"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    if name not in headers:
                        headers[name] = value
                if "Cache-Control" not in headers:
                    headers["Cache-Control"] = caching
                if https:
                    headers["Strict-Transport-Security"] = HSTS
            await send(message)

        await self.app(scope, receive, send_with_headers)


def new_token() -> str:
    return secrets.token_urlsafe(32)


def same_token(given: str, expected: str) -> bool:
    """Constant-time comparison, so the time taken does not reveal how much matched."""
    return bool(given) and hmac.compare_digest(given.encode(), expected.encode())


def same_origin(origin: str | None, host: str | None, scheme: str) -> bool:
    """A POST's Origin header, when the browser names one, must be this site: a second lock
    behind the CSRF token. Under ``Referrer-Policy: no-referrer`` browsers send ``Origin: null``
    even for this site's own forms, so "null" (like no header) leaves the token to decide; an
    opaque origin cannot carry our SameSite=Strict cookie anyway."""
    if origin is None or origin == "null":
        return True
    if not host:
        return False
    return origin == f"{scheme}://{host}"


# --- file names for downloads (RFC 6266, RFC 8187) ----------------------------------------------

_UNSAFE_ASCII = re.compile(r"[^A-Za-z0-9._ ()+,=@-]")


def clean_filename(name: str) -> str:
    """The attachment's name without paths, control or format characters (bidi overrides
    that make "gpj.exe" look like "exe.jpg"), or leading dots."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    kept = "".join(ch for ch in base if unicodedata.category(ch)[0] not in "CZ" or ch == " ")
    kept = " ".join(kept.split()).lstrip(". ")
    return kept[:150] or "attachment"


def content_disposition(name: str) -> str:
    """``attachment`` with an ASCII fallback ``filename`` and the exact UTF-8 ``filename*``."""
    clean = clean_filename(name)
    fallback = _UNSAFE_ASCII.sub("_", clean) or "attachment"
    encoded = urllib.parse.quote(clean, safe="")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"


def visible(text: str, keep: str = "\n\t") -> str:
    """Text from a message with its control and format characters (bidi overrides, zero-width
    joiners, terminal escapes) shown as \\x.. or \\u...., never obeyed."""
    out = []
    for ch in text.replace("\r\n", "\n"):
        if ch in keep or unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co", "Cn"):
            out.append(ch)
        else:
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
    return "".join(out)


class BodyLimit:
    """Refuses request bodies over ``limit`` bytes (413), and bodies of unknown length (411):
    the forms here are a few kilobytes, browsers always say how long they are, and the sign-in
    form is open to anyone who can reach the port."""

    def __init__(self, app: ASGIApp, limit: int = 256 * 1024) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in ("GET", "HEAD"):
            lengths = [v for n, v in scope.get("headers", []) if n == b"content-length"]
            if not lengths:
                await _refuse(send, 411, b"Length required.\n")
                return
            if not lengths[0].isdigit() or int(lengths[0]) > self.limit:
                await _refuse(send, 413, b"Request too large.\n")
                return
        await self.app(scope, receive, send)


async def _refuse(send: Send, status: int, text: bytes) -> None:
    headers = [(b"content-type", b"text/plain; charset=utf-8")]
    headers += [(k.lower().encode(), v.encode()) for k, v in HEADERS.items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": text})
