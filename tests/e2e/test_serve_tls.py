"""`gateway serve` end to end: TLS on the way in. STARTTLS (RFC 3207) and what the relayed
copy's Received: field says of it (RFC 3848), implicit TLS (RFC 8314), require_tls and its
exempt networks, commands pipelined after STARTTLS (the CVE-2024-34083 class), REQUIRETLS
(RFC 8689 §4), and the certificate reloaded on SIGHUP without stopping anything."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

from rig.gatewayproc import Gateway, message, raw_session, split_trace, transact
from rig.ports import free_port
from support.inboundtls import (
    Pki,
    client_context,
    implicit,
    make_pki,
    raw_starttls,
    server_certificate,
    starttls,
    wait_events,
)

pytestmark = pytest.mark.e2e

SENDER = "head@school.test"
TO = ["a@secure.test"]
EXEMPT = "127.0.0.9"


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


def _received(gw: Gateway, sent: bytes) -> str:
    [relayed] = gw.wait_relayed(1, of=sent)
    return split_trace(relayed.data, sent)[0]


@pytest.mark.parametrize(
    ("version", "name"),
    [(ssl.TLSVersion.TLSv1_3, "TLSv1.3"), (ssl.TLSVersion.TLSv1_2, "TLSv1.2")],
)
def test_starttls_is_recorded_in_the_relayed_copys_received_field(
    serve: Callable[..., Gateway], pki: Pki, version: ssl.TLSVersion, name: str
) -> None:
    gw = serve(smtp=pki.smtp())
    sent = message(flagged=False)
    with gw.smtp() as plain:
        assert plain.has_extn("starttls")
        assert not plain.has_extn("auth")  # never a password in the clear (RFC 4954 §4)
        assert not plain.has_extn("requiretls")  # RFC 8689 §4: only after STARTTLS
    with starttls(gw, client_context(pki.ca.ca_file, version=version)) as client:
        assert not client.has_extn("starttls")
        assert client.has_extn("requiretls")
        assert client.sock is not None
        cipher = client.sock.cipher()  # type: ignore[attr-defined]
        assert transact(client, SENDER, TO, sent).code == 250
    received = _received(gw, sent)
    assert " with ESMTPS id " in received, received
    assert f"(using {name} with cipher {cipher[0]})" in received, received


def test_a_client_held_to_tls_1_1_cannot_start_tls(serve: Callable[..., Gateway], pki: Pki) -> None:
    gw = serve(smtp=pki.smtp())
    context = client_context(pki.ca.ca_file)
    with warnings.catch_warnings():  # TLS 1.1 is deprecated: that is the point
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        context.maximum_version = ssl.TLSVersion.TLSv1_1
    context.set_ciphers("ALL:@SECLEVEL=0")
    with gw.smtp() as client, pytest.raises(ssl.SSLError):
        client.starttls(context=context)
    [failed] = gw.proc.wait_event("tls handshake failed")
    assert "UNSUPPORTED_PROTOCOL" in failed["problem"], failed
    assert not gw.proc.events("unexpected error")
    assert gw.proc.running
    assert gw.relayed() == []


def test_implicit_tls_listener_speaks_tls_from_the_first_byte(
    serve: Callable[..., Gateway], pki: Pki
) -> None:
    port = free_port()
    gw = serve(smtp=pki.smtp(implicit_tls_listen=f"127.0.0.1:{port}"))
    sent = message(flagged=False)
    with implicit(port, client_context(pki.ca.ca_file)) as client:
        assert not client.has_extn("starttls")  # already in TLS
        assert client.has_extn("requiretls")
        assert transact(client, SENDER, TO, sent).code == 250
    received = _received(gw, sent)
    assert " with ESMTPS id " in received, received
    assert "(using TLSv1.3 with cipher " in received, received
    with socket.create_connection(("127.0.0.1", port), timeout=10) as plaintext:
        plaintext.sendall(b"EHLO client.school.test\r\n")  # not a TLS ClientHello
        assert not plaintext.recv(100).startswith(b"220")  # a TLS alert, or the door shut


def test_require_tls_refuses_mail_before_starttls_except_from_exempt_networks(
    serve: Callable[..., Gateway], pki: Pki
) -> None:
    gw = serve(smtp=pki.smtp(require_tls=True, tls_exempt_networks=[f"{EXEMPT}/32"]))
    with gw.smtp() as plain:
        code, text = plain.mail(SENDER)
        assert (code, text.decode()) == (530, "5.7.0 Must issue a STARTTLS command first")
    assert gw.relayed() == []
    in_tls = message(flagged=False)
    with starttls(gw, client_context(pki.ca.ca_file)) as client:
        assert transact(client, SENDER, TO, in_tls).code == 250
    gw.wait_relayed(1, of=in_tls)
    exempt = message(flagged=False)
    with gw.smtp(source=EXEMPT) as local_mta:
        assert transact(local_mta, SENDER, TO, exempt).code == 250
    assert " with ESMTP id " in _received(gw, exempt)


def test_commands_pipelined_after_starttls_are_discarded(
    serve: Callable[..., Gateway], pki: Pki
) -> None:
    gw = serve(smtp=pki.smtp())
    with raw_session(gw.address) as (session, greeting):
        assert greeting.code == 220
        session.expect("EHLO client.school.test", 250)
        # One packet: a man in the middle would append his commands to the client's STARTTLS.
        session.send(b"STARTTLS\r\nRSET\r\nMAIL FROM:<x@y.test>\r\n")
        assert session.reply().code == 220
        raw_starttls(session, client_context(pki.ca.ca_file))
        ehlo = session.expect("EHLO client.school.test", 250)  # not a reply to RSET or MAIL
        assert "REQUIRETLS" in ehlo.text
        refused = session.command("RCPT TO:<a@secure.test>")
        assert refused.code == 503, refused  # no MAIL was executed
        session.expect("QUIT", 221)
    assert gw.relayed() == []


def test_requiretls_is_taken_only_inside_tls(serve: Callable[..., Gateway], pki: Pki) -> None:
    gw = serve(smtp=pki.smtp())
    with gw.smtp() as plain:
        code, text = plain.mail(SENDER, ["REQUIRETLS"])
        assert code == 530, text
        assert text.decode().startswith("5.7.10 ")
    with starttls(gw, client_context(pki.ca.ca_file)) as client:
        code, text = client.mail(SENDER, ["REQUIRETLS"])
        assert code == 250, text  # not aiosmtpd's 555
        client.rset()
        code, text = client.mail(SENDER, ["REQUIRETLS=yes"])
        assert code == 501, text


def _replace(leaf_from: Pki, into: Pki) -> None:
    shutil.copyfile(leaf_from.server.cert_file, into.server.cert_file)
    shutil.copyfile(leaf_from.server.key_file, into.server.key_file)


@pytest.mark.parametrize("workers", [1, 2])
def test_sighup_reloads_the_certificate_and_keeps_sessions_and_the_gateway(
    serve: Callable[..., Gateway], tmp_path: Path, pki: Pki, workers: int
) -> None:
    renewed = make_pki(tmp_path / "renewed")
    gw = serve(smtp=pki.smtp(workers=workers))
    old_client = client_context(pki.ca.ca_file)
    with starttls(gw, old_client) as before:
        assert server_certificate(before) == pki.server.cert_der
        _replace(renewed, pki)
        assert gw.proc.pid is not None
        os.kill(gw.proc.pid, signal.SIGHUP)
        wait_events(gw, "certificate reloaded", workers)
        sent = message(flagged=False)
        assert transact(before, SENDER, TO, sent).code == 250  # the old session goes on
    gw.wait_relayed(1, of=sent)
    for _ in range(3 * workers):  # SO_REUSEPORT spreads new sessions over the workers
        with starttls(gw, client_context(renewed.ca.ca_file)) as after:
            assert server_certificate(after) == renewed.server.cert_der
    assert gw.proc.running


def test_a_reload_that_fails_keeps_the_old_certificate(
    serve: Callable[..., Gateway], pki: Pki
) -> None:
    gw = serve(smtp=pki.smtp())
    pki.server.key_file.write_text("not a key\n")
    assert gw.proc.pid is not None
    os.kill(gw.proc.pid, signal.SIGHUP)
    [failed] = gw.proc.wait_event("certificate reload failed; the old certificate stays")
    assert failed["level"] == "error"
    with starttls(gw, client_context(pki.ca.ca_file)) as client:
        assert server_certificate(client) == pki.server.cert_der
    assert gw.proc.running


def test_sighup_without_a_certificate_does_not_stop_the_gateway(
    serve: Callable[..., Gateway],
) -> None:
    gw = serve()
    assert gw.proc.pid is not None
    os.kill(gw.proc.pid, signal.SIGHUP)
    gw.proc.wait_event("certificate: none to reload (no smtp.tls_cert)")
    gw.proc.wait_event("allowlist reloaded")  # the allowlist is read again all the same
    assert gw.send(SENDER, TO, message(flagged=False)).code == 250
    assert gw.proc.running
