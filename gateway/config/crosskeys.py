"""The checks of the configuration that need more than one key: keys that contradict each
other, or a setting that only makes sense with another. Each names the key to change."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.config.values import RelayTls, StoreBackend
from gateway.errors import ConfigError

if TYPE_CHECKING:
    from gateway.config.settings import Settings


def check_across_keys(settings: Settings) -> None:
    """The checks that need more than one key; each names the key to change."""
    web, relay, review = settings.web, settings.relay, settings.review
    _both_or_neither("web.tls_cert", bool(web.tls_cert), "web.tls_key", bool(web.tls_key))
    _both_or_neither("relay.username", bool(relay.username), "relay.password", bool(relay.password))
    if relay.ca_file and relay.tls is RelayTls.NONE:
        raise ConfigError("relay.ca_file", "is used only with tls = starttls or implicit")
    smtp = settings.smtp
    _both_or_neither("smtp.tls_cert", bool(smtp.tls_cert), "smtp.tls_key", bool(smtp.tls_key))
    if smtp.implicit_tls_listen and not smtp.tls_cert:
        raise ConfigError("smtp.implicit_tls_listen", "needs smtp.tls_cert and smtp.tls_key")
    if smtp.require_tls and not smtp.tls_cert:
        raise ConfigError("smtp.require_tls", "needs smtp.tls_cert and smtp.tls_key")
    if smtp.trusted_client_names and not smtp.client_ca_file:
        raise ConfigError("smtp.trusted_client_names", "needs smtp.client_ca_file")
    if smtp.trusted_client_names and not settings.policy.local_domains:
        # A connector's certificate may be shared by every tenant (Exchange Online): such a
        # client may send only as the local domains, so there must be some.
        raise ConfigError(
            "smtp.trusted_client_names", "needs policy.local_domains (the only senders allowed)"
        )
    if smtp.client_ca_file and not smtp.tls_cert:
        raise ConfigError("smtp.client_ca_file", "needs smtp.tls_cert and smtp.tls_key")
    if settings.delivery.retry_after > settings.delivery.give_up_after:
        raise ConfigError("delivery.retry_after", "must not be longer than delivery.give_up_after")
    if web.enabled and web.listen == settings.smtp.listen:
        raise ConfigError("web.listen", "must differ from smtp.listen")
    _portal(settings)
    if settings.store.backend is StoreBackend.POSTGRESQL:
        _shared_store_keys(settings)
    if review.escalate_after > review.expire_after:
        # A hold would expire before anyone was alerted that it waits.
        raise ConfigError("review.escalate_after", "must not be longer than review.expire_after")


def _shared_store_keys(settings: Settings) -> None:
    """Several nodes on one database: a key each node made in its own data_dir would differ
    from the others', and a hold sealed on one node could not be opened on the next."""
    if not settings.store.dsn.reveal():
        raise ConfigError("store.dsn", "is needed with backend = postgresql")
    for section, given in (
        ("store", bool(settings.store.key or settings.store.key_file)),
        ("audit", bool(settings.audit.key or settings.audit.key_file)),
    ):
        if not given:
            raise ConfigError(
                f"{section}.key_file",
                f"give {section}.key or {section}.key_file with backend = postgresql:"
                " every node needs the same store and audit keys",
            )
    if settings.web.enabled and not settings.web.secret_key:
        # Web sessions live in the database; a cookie signed on one node must verify on the
        # next, so a key made in each node's data_dir would sign reviewers out at random.
        raise ConfigError(
            "web.secret_key",
            "give it with backend = postgresql: every node needs the same one for the web UI",
        )


def _portal(settings: Settings) -> None:
    portal = settings.portal
    _both_or_neither(
        "portal.tls_cert", bool(portal.tls_cert), "portal.tls_key", bool(portal.tls_key)
    )
    if portal.enabled and not portal.public_url:
        raise ConfigError("portal.public_url", "is needed with portal.enabled: links point there")
    if settings.secure_link.automatic_for and not portal.public_url:
        raise ConfigError(
            "secure_link.automatic_for", "needs portal.public_url: the links point there"
        )
    if portal.enabled:
        taken = {"smtp.listen": settings.smtp.listen}
        if settings.web.enabled:
            taken["web.listen"] = settings.web.listen
        for key, listen in taken.items():
            if portal.listen == listen:
                raise ConfigError("portal.listen", f"must differ from {key}")
    if (
        portal.enabled
        and settings.store.backend is StoreBackend.POSTGRESQL
        and not portal.secret_key
    ):
        raise ConfigError(
            "portal.secret_key",
            "give it with backend = postgresql: every node needs the same one for the portal",
        )


def _both_or_neither(first: str, has_first: bool, second: str, has_second: bool) -> None:
    if has_first != has_second:
        missing = second if has_first else first
        pair = f"{first.rpartition('.')[2]} and {second.rpartition('.')[2]}"
        raise ConfigError(missing, f"give both {pair}, or neither")
