"""How a release of a hold leaves: always through the smarthost ([relay]), whatever way the
message first went. For a hold made when the delivery queue gave up (the recipients' own MX
hosts could not be reached, or not authenticated), a reviewer must see this before releasing:
the copy takes a different road than the one that failed. One sentence for the web page and
`gateway held show`."""

from __future__ import annotations

from gateway.config.settings import RelaySettings
from gateway.config.values import RelayTls
from gateway.core.model import Reason
from gateway.store import Hold

GAVE_UP = frozenset({Reason.DELIVERY_TLS_FAILED.value, Reason.DELIVERY_FAILED.value})


def made_by_give_up(hold: Hold) -> bool:
    """The delivery queue held it when direct delivery gave up (``delivery-*`` reasons)."""
    return any(reason in GAVE_UP for reason in hold.reasons)


def release_route(relay: RelaySettings) -> str:
    """ "A release goes through the smarthost (relay.school.test:587, TLS: starttls,
    certificate verified for relay.school.test)"; the smarthost transport verifies whenever
    TLS is on (RFC 3207, RFC 8314), and never when it is off."""
    host = f"[{relay.host}]" if ":" in relay.host else relay.host
    if relay.tls is RelayTls.NONE:
        how = "TLS: none, certificate not verified"
    else:
        how = f"TLS: {relay.tls.value}, certificate verified for {relay.tls_name or relay.host}"
    return f"A release goes through the smarthost ({host}:{relay.port}, {how})"
