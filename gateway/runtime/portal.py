"""The portal's parts and its listener inside `gateway serve` ([portal] enabled): built, its
key and TLS pair loaded, before anything listens; its port bound with the others; served once
the workers are up. Like the web UI, a port in use is logged and the SMTP filter runs on
without it. Imported only when the portal is on, so other commands do not load it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path

from starlette.applications import Starlette

from gateway import logs
from gateway.config.settings import Settings
from gateway.errors import ConfigError
from gateway.portal.app import create_app
from gateway.portal.service import Portal, PortalStore, code_pepper
from gateway.portal.state import PortalApp, environment
from gateway.portal.viewer import Signer
from gateway.review.model import Review
from gateway.runtime.embedded import EmbeddedApp, load_tls_pair
from gateway.runtime.parts import data_dir
from gateway.store.crypto import load_key
from gateway.store.keyfile import read_key_file

KEY_FILE = "portal.key"


def load_portal_secret(settings: Settings, folder: Path) -> str:
    """[portal] secret_key (GATEWAY_PORTAL_SECRET_KEY), else <data_dir>/portal.key, made with
    mode 0600 at first start (as the web UI's web.key)."""
    if settings.portal.secret_key:
        return settings.portal.secret_key.reveal()
    path = folder / KEY_FILE
    text = read_key_file(path, "portal.secret_key", lambda: secrets.token_hex(32).encode() + b"\n")
    if len(text) < 32:
        raise ConfigError("portal.secret_key", f"{path} must hold at least 32 characters")
    return text


def build_portal(
    settings: Settings, review: Review, store: PortalStore, wake: Callable[[], None]
) -> Starlette:
    folder = data_dir(settings)
    mails = review.secure_links.notices  # the same emails the reviewer's side sends
    portal = Portal(store, mails, code_pepper(load_key(settings, folder)), wake)
    state = PortalApp(
        portal=portal,
        signer=Signer(load_portal_secret(settings, folder)),
        templates=environment(),
        organisation=review.notices.organisation,
    )
    return create_app(state)


class EmbeddedPortal(EmbeddedApp):
    """The portal inside `gateway serve`, on [portal] listen (``EmbeddedApp``)."""

    def __init__(
        self, settings: Settings, review: Review, store: PortalStore, wake: Callable[[], None]
    ) -> None:
        portal = settings.portal
        app = build_portal(settings, review, store, wake)
        tls = load_tls_pair(settings, "portal")
        log = logs.get("gateway.portal")
        super().__init__(
            "portal", "portal.listen", portal.listen, app, tls, portal.trusted_proxies, log
        )
