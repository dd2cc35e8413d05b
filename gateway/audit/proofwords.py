"""How a copy of a message was delivered, in words: the ``delivered`` entry of the audit trail
as its sentence ("Delivered to bob@partner.test via mx1.partner.test [127.0.0.5] over TLSv1.3,
certificate verified by MTA-STS, ..."), and the sender's delivery confirmation (``review.notices``).

Apart from ``words`` because both say the same facts (the host, the TLS version, what
authenticated the peer, when), one to the trail's reader and one to the sender, and
neither needs the rest of the trail's sentences. Pure, like ``words``: no clock is read, so a
record read years later says what it said on the day.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

# What authenticated the peer (``delivery.transport.PeerAuth`` values).
_AUTH_WORDS = {
    "dane-ee": "certificate matched DANE (DANE-EE)",
    "dane-ta": "certificate verified by DANE (DANE-TA)",
    "mta-sts-webpki": "certificate verified by MTA-STS",
    "smarthost-verified": "smarthost certificate verified",
    "none": "certificate not verified",
}


def tls_words(version: str) -> str:
    """TLSv1.3 -> TLS 1.3, as people write it."""
    return version.replace("TLSv", "TLS ") if version.startswith("TLSv") else version


def delivered_words(data: Mapping[str, Any], with_reply: bool = True) -> str:
    """ "Delivered to bob@partner.test via mx1.partner.test [127.0.0.5] over TLSv1.3,
    certificate verified by MTA-STS, at 01 Dec 2026 10:02 UTC — 250 2.0.0 Ok: queued as 12"."""
    host = str(data.get("host") or "")
    address = str(data.get("address") or "")
    where = f"{host} [{address}]" if host and address else host or address
    route = "the smarthost" if data.get("route") == "smarthost" else "its MX host"
    text = f"Delivered to {data.get('recipient', '?')} via {where or route}"
    version = str(data.get("tls_version") or "")
    if version:
        auth = str(data.get("authenticated") or "none")
        text += f" over {version}, {_AUTH_WORDS.get(auth, auth)}"
    elif host:
        text += " without TLS"
    else:
        text += " (the transport did not report how)"
    at = _clock(str(data.get("at") or ""))
    if at:
        text += f", at {at}"
    reply = str(data.get("reply") or "")
    return f"{text} — {reply}" if with_reply and reply else text


def confirmation_words(data: Mapping[str, Any]) -> str:
    """For the sender: "delivered to mx1.partner.example over TLS 1.3, certificate verified
    by MTA-STS, at 01 Dec 2026 10:02 UTC"."""
    host = str(data.get("host") or "")
    if data.get("route") == "smarthost":
        text = f"handed to our mail server {host}".rstrip()
    else:
        text = f"delivered to {host or 'its mail server'}"
    version = str(data.get("tls_version") or "")
    if version:
        auth = str(data.get("authenticated") or "none")
        text += f" over {tls_words(version)}, {_AUTH_WORDS.get(auth, auth)}"
    at = _clock(str(data.get("at") or ""))
    return f"{text}, at {at}" if at else text


def _clock(iso: str) -> str:
    """01 Dec 2026 10:02 UTC: always with the day, so the sentence is the same whenever it is
    read (no clock read here: a record read years later says what it said on the day)."""
    try:
        moment = dt.datetime.fromisoformat(iso).astimezone(dt.UTC)
    except ValueError:
        return ""
    return moment.strftime("%d %b %Y %H:%M UTC")
