"""The portal's proof that this browser entered the right code, and its CSRF tokens.

A verified viewer gets one cookie, signed with the portal's key (``itsdangerous``): the link
it is for, a random nonce, and when the code was entered. It is scoped to the link's path,
HttpOnly, SameSite=Strict and, over HTTPS, Secure; it is believed for VIEW_LIFETIME after the
code, and the link's state is checked again on every request (a revoked link shows nothing).

Forms carry a signed token bound to the link and, after the code, to the cookie's nonce (the
signed double-submit pattern of the OWASP CSRF Prevention Cheat Sheet). The forms before the
code have no cookie to bind to: a cookie set when the link is opened from an email would be a
cross-site navigation under SameSite=Strict, and would overwrite a verified one. Their token
is bound to the link and expires; the Origin check and the store's limits do the rest.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer

from gateway.core.securelink import VIEW_LIFETIME

COOKIE = "portal_viewer"
FORM_LIFETIME = 2 * 3600  # a form left open this long must be loaded again


@dataclass(frozen=True)
class Viewer:
    link_id: str
    nonce: str
    verified_at: float


class Signer:
    def __init__(self, secret: str) -> None:
        self._cookies = URLSafeTimedSerializer(secret, salt="gateway portal viewer")
        self._forms = URLSafeTimedSerializer(secret, salt="gateway portal form")

    def new_viewer(self, link_id: str, at: float) -> tuple[Viewer, str]:
        """A viewer for ``link_id`` verified at ``at``, and its cookie value."""
        viewer = Viewer(link_id, secrets.token_urlsafe(16), at)
        return viewer, self._cookies.dumps([viewer.link_id, viewer.nonce, viewer.verified_at])

    def viewer(self, cookie: str | None, link_id: str, now: float) -> Viewer | None:
        """The viewer the cookie proves for ``link_id``, if it is still within VIEW_LIFETIME."""
        if not cookie:
            return None
        try:
            found = self._cookies.loads(cookie, max_age=int(VIEW_LIFETIME))
        except BadSignature:
            return None
        if not (isinstance(found, list) and len(found) == 3):
            return None
        cookie_link, nonce, verified_at = found
        if cookie_link != link_id or not isinstance(verified_at, int | float):
            return None
        if not (isinstance(nonce, str) and 0 <= now - verified_at < VIEW_LIFETIME):
            return None
        return Viewer(link_id, nonce, float(verified_at))

    def form_token(self, link_id: str, viewer: Viewer | None = None) -> str:
        return self._forms.dumps([link_id, viewer.nonce if viewer else ""])

    def form_ok(self, token: str, link_id: str, viewer: Viewer | None = None) -> bool:
        """The token was made here, recently, for this link (and this viewer's cookie)."""
        try:
            found = self._forms.loads(token, max_age=FORM_LIFETIME)
        except BadSignature:
            return False
        expected = [link_id, viewer.nonce if viewer else ""]
        return isinstance(found, list) and found == expected
