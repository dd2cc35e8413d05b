"""`gateway serve` relaying to a smarthost over TLS with a test-CA certificate: the certificate
checked for [relay] tls_name, RFC 8689 REQUIRETLS on flagged mail, and `TLS-Required: No` never
honoured for flagged mail.

What the client sees is the promise: 250 only once the smarthost (verified) took the message;
a smarthost whose certificate does not verify, or that does not offer the REQUIRETLS that
[relay] requiretls = "require" insists on, is a 4xx and the smarthost is told nothing.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rig import Rig
from rig.gatewayproc import Gateway, message, split_trace, transact
from rig.upstream import Upstream
from support.inboundtls import client_context, make_pki, starttls

pytestmark = pytest.mark.e2e

RELAY_NAME = "relay.school.test"
RELAY_ADDRESS = "127.0.0.62"
SENDER = "head@school.test"
SECURE = "colleague@secure.test"
INSECURE = "officer@nosts.test"


@pytest.fixture
def upstream(rig: Rig) -> Iterator[Upstream]:
    """The smarthost for this module: STARTTLS with a rig-CA certificate for RELAY_NAME."""
    leaf = rig.ca.issue((RELAY_NAME,))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(leaf.cert_file, leaf.key_file)
    server = Upstream(host=RELAY_ADDRESS, tls=context, name=RELAY_NAME).start()
    try:
        yield server
    finally:
        server.close()


def over_tls(
    serve: Callable[..., Gateway], rig: Rig, tls_name: str = RELAY_NAME, **relay: object
) -> Gateway:
    return serve(
        relay={
            "host": RELAY_ADDRESS,
            "tls": "starttls",
            "ca_file": str(rig.ca_file),
            "tls_name": tls_name,
            **relay,
        }
    )


def told_nothing(upstream: Upstream) -> bool:
    return not any(line.upper().startswith("MAIL") for line in upstream.transcript)


@pytest.mark.parametrize("flagged", [True, False], ids=["flagged", "unflagged"])
def test_flagged_mail_carries_requiretls_when_the_smarthost_offers_it(
    serve: Callable[..., Gateway], rig: Rig, upstream: Upstream, flagged: bool
) -> None:
    upstream.requiretls = True
    gw = over_tls(serve, rig)
    original = message(to=[SECURE], flagged=flagged)
    reply = gw.send(SENDER, [SECURE], original)
    assert reply.code == 250, reply
    [relayed] = gw.wait_relayed(1, of=original)
    assert relayed.tls_version, "relayed in the clear"
    assert ("REQUIRETLS" in relayed.mail_line.upper().split()) is flagged, relayed.mail_line


def test_requiretls_off_sends_flagged_mail_without_it(
    serve: Callable[..., Gateway], rig: Rig, upstream: Upstream
) -> None:
    upstream.requiretls = True
    gw = over_tls(serve, rig, requiretls="off")
    original = message(to=[SECURE])
    assert gw.send(SENDER, [SECURE], original).code == 250
    [relayed] = gw.wait_relayed(1, of=original)
    assert "REQUIRETLS" not in relayed.mail_line.upper()


def test_require_holds_back_flagged_mail_from_a_smarthost_without_requiretls(
    serve: Callable[..., Gateway], rig: Rig, upstream: Upstream
) -> None:
    gw = over_tls(serve, rig, requiretls="require")
    original = message(to=[SECURE])
    reply = gw.send(SENDER, [SECURE], original)
    assert reply.code == 451, reply
    assert told_nothing(upstream)
    [failed] = gw.proc.events("relay failed")
    assert "REQUIRETLS" in failed["upstream"]

    # Unflagged mail is not held back by it; and once the smarthost offers REQUIRETLS, the
    # sending MTA's retry of the flagged message goes, with it.
    plain = message(to=[SECURE], flagged=False)
    assert gw.send(SENDER, [SECURE], plain).code == 250
    gw.wait_relayed(1, of=plain)
    upstream.requiretls = True
    assert gw.send(SENDER, [SECURE], original).code == 250
    [relayed] = gw.wait_relayed(1, of=original)
    assert "REQUIRETLS" in relayed.mail_line.upper().split()


def test_a_client_asking_for_requiretls_hears_the_5_7_30_of_a_smarthost_without_it(
    serve: Callable[..., Gateway], rig: Rig, upstream: Upstream, tmp_path: Path
) -> None:
    # RFC 8689 §4.2.1: never handed to a next hop without REQUIRETLS; the client is told
    # with the enhanced code that says why (RFC 3463), not a generic 5.0.0.
    pki = make_pki(tmp_path / "pki")
    relay = {"host": RELAY_ADDRESS, "tls": "starttls", "ca_file": str(rig.ca_file)}
    gw = serve(smtp=pki.smtp(), relay=relay | {"tls_name": RELAY_NAME})
    with starttls(gw, client_context(pki.ca.ca_file)) as client:
        sent = message(to=[SECURE], flagged=False)
        reply = transact(client, SENDER, [SECURE], sent, mail_options=["REQUIRETLS"])
    assert (reply.code, reply.text) == (550, "5.7.30 Upstream refused: REQUIRETLS support required")
    assert told_nothing(upstream)


def test_a_smarthost_certificate_for_another_name_is_a_4xx_and_nothing_is_sent(
    serve: Callable[..., Gateway], rig: Rig, upstream: Upstream
) -> None:
    gw = over_tls(serve, rig, tls_name="smarthost.elsewhere.test")
    reply = gw.send(SENDER, [SECURE], message(to=[SECURE]))
    assert reply.code == 451, reply
    assert told_nothing(upstream)
    assert gw.relayed() == []
    [logged] = gw.proc.events("upstream certificate not verified")
    assert logged["name"] == "smarthost.elsewhere.test"
    assert "mismatch" in logged["problem"], logged


def test_tls_required_no_is_not_honoured_for_flagged_mail(
    serve: Callable[..., Gateway], rig: Rig, upstream: Upstream
) -> None:
    # RFC 8689 §5 lets a sender ask for recipients' TLS policies to be ignored; for flagged
    # mail the gateway never does: the insecure recipient is still held, and the header is
    # passed on untouched to the secure one.
    gw = over_tls(serve, rig)
    recipients = [SECURE, INSECURE]
    original = message(to=recipients, headers=["TLS-Required: No"])
    reply = gw.send(SENDER, recipients, original)
    assert reply.code == 250, reply
    [hold] = gw.holds(of=original)
    assert hold.addresses == [INSECURE]
    assert hold.id in reply.text
    [relayed] = gw.wait_relayed(1, of=original)
    assert relayed.rcpt_tos == (SECURE,)
    split_trace(relayed.data, original)
    assert b"\r\nTLS-Required: No\r\n" in relayed.data
