"""`gateway serve` end to end: who may send from outside trusted_networks. A client
certificate that verifies against client_ca_file and names one of trusted_client_names (an
Exchange Online connector), and SMTP AUTH for submit accounts (RFC 4954): only inside TLS,
throttled like the web sign-in; anyone else 554 5.7.1. Loopback is made untrusted by a
trusted_networks that does not hold it."""

from __future__ import annotations

import base64
import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from rig.gatewayproc import Gateway, message, raw_session, split_trace, transact
from rig.pki import Leaf, RigCA
from support.inboundtls import PASSWORD, Pki, add_account, client_context, make_pki, starttls

pytestmark = pytest.mark.e2e

SENDER = "head@school.test"
TO = ["a@secure.test"]
CONNECTOR = "mail.protection.partner.test"
ELSEWHERE = ["192.0.2.0/24"]  # trusted_networks without loopback


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


def _plain(name: str, password: str) -> str:
    return base64.b64encode(f"\0{name}\0{password}".encode()).decode()


# ---- client certificates


@dataclass(frozen=True)
class CertCase:
    name: str
    leaf: Callable[[Pki, RigCA], Leaf | None]
    trusted: bool


CERT_CASES = [
    CertCase("names the connector", lambda p, o: p.ca.issue((CONNECTOR,), client=True), True),
    CertCase(
        "a wildcard over the connector",
        lambda p, o: p.ca.issue(("*.protection.partner.test",), client=True),
        True,
    ),
    CertCase("another name", lambda p, o: p.ca.issue(("mx.other.test",), client=True), False),
    CertCase("no certificate", lambda p, o: None, False),
]


@pytest.mark.parametrize("case", CERT_CASES, ids=[c.name for c in CERT_CASES])
def test_a_client_certificate_naming_a_trusted_host_is_trusted(
    serve: Callable[..., Gateway], pki: Pki, tmp_path: Path, case: CertCase
) -> None:
    gw = serve(
        smtp=pki.smtp(
            trusted_networks=ELSEWHERE,
            trusted_client_names=[CONNECTOR],
            client_ca_file=str(pki.ca.ca_file),
        )
    )
    leaf = case.leaf(pki, RigCA(tmp_path / "other"))
    sent = message(flagged=False)
    with starttls(gw, client_context(pki.ca.ca_file, cert=leaf)) as client:
        # XFORWARD rewrites the trail: a connector's certificate, shared by every tenant, may
        # not use it (trusted_networks only).
        assert not client.has_extn("xforward")
        assert client.docmd("XFORWARD ADDR=192.0.2.7")[0] == 550
        reply = transact(client, SENDER, TO, sent)
    if case.trusted:
        assert reply.code == 250, reply
        [relayed] = gw.wait_relayed(1, of=sent)
        assert " with ESMTPS id " in split_trace(relayed.data, sent)[0]
    else:
        assert (reply.code, reply.text[:5]) == (554, "5.7.1"), reply
        assert gw.relayed() == []


def test_a_certificate_from_another_ca_is_not_trusted(
    serve: Callable[..., Gateway], pki: Pki, tmp_path: Path
) -> None:
    gw = serve(
        smtp=pki.smtp(
            trusted_networks=ELSEWHERE,
            trusted_client_names=[CONNECTOR],
            client_ca_file=str(pki.ca.ca_file),
        )
    )
    stranger = RigCA(tmp_path / "stranger").issue((CONNECTOR,), client=True)
    context = client_context(pki.ca.ca_file, cert=stranger)
    # A requested certificate that does not verify ends the handshake (OpenSSL's rule): the
    # session never gets as far as MAIL.
    refused = (ssl.SSLError, smtplib.SMTPServerDisconnected, OSError)
    with pytest.raises(refused), starttls(gw, context) as client:
        transact(client, SENDER, TO, message(flagged=False))
    gw.proc.wait_event("tls handshake failed")
    assert gw.relayed() == []


def test_an_untrusted_client_is_greeted_but_refused_at_mail(
    serve: Callable[..., Gateway], pki: Pki
) -> None:
    gw = serve(smtp=pki.smtp(trusted_networks=ELSEWHERE))
    with raw_session(gw.address) as (session, greeting):
        assert greeting.code == 220  # it may still start TLS and identify itself
        session.expect("EHLO client.school.test", 250)
        refused = session.command("MAIL FROM:<head@school.test>")
        assert (refused.code, refused.text) == (
            554,
            "5.7.1 Relay access denied: not a trusted network",
        )


# ---- SMTP AUTH


def _submit_gateway(serve: Callable[..., Gateway], pki: Pki) -> Gateway:
    gw = serve(smtp=pki.smtp(trusted_networks=ELSEWHERE))
    add_account(gw.proc.config, "scanner", "submit")
    add_account(gw.proc.config, "reviewer1", "reviewer")
    return gw


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_auth_with_a_submit_account_is_trusted_and_recorded(
    serve: Callable[..., Gateway], pki: Pki, mechanism: str
) -> None:
    gw = _submit_gateway(serve, pki)
    sent = message(flagged=False)
    with starttls(gw, client_context(pki.ca.ca_file)) as client:
        assert client.has_extn("auth")
        assert set(client.esmtp_features["auth"].split()) == {"PLAIN", "LOGIN"}
        client.user, client.password = "scanner", PASSWORD
        authobject = client.auth_plain if mechanism == "PLAIN" else client.auth_login
        code, _ = client.auth(mechanism, authobject, initial_response_ok=mechanism == "PLAIN")
        assert code == 235
        assert transact(client, SENDER, TO, sent).code == 250
    [relayed] = gw.wait_relayed(1, of=sent)
    received = split_trace(relayed.data, sent)[0]
    assert " with ESMTPSA id " in received, received
    assert "(authenticated as scanner)" in received, received
    assert PASSWORD not in gw.proc.output()
    assert PASSWORD.encode() not in relayed.data
    assert gw.proc.events("authenticated", user="scanner")


@pytest.mark.parametrize(
    ("name", "password"),
    [("scanner", "the wrong password!"), ("nobody", PASSWORD), ("reviewer1", PASSWORD)],
    ids=["wrong password", "unknown account", "a reviewer account"],
)
def test_bad_auth_gets_535_and_no_trust(
    serve: Callable[..., Gateway], pki: Pki, name: str, password: str
) -> None:
    gw = _submit_gateway(serve, pki)
    with starttls(gw, client_context(pki.ca.ca_file)) as client:
        code, text = client.docmd("AUTH", f"PLAIN {_plain(name, password)}")
        assert (code, text.decode()) == (535, "5.7.8 Authentication credentials invalid")
        code, text = client.mail(SENDER)
        assert code == 554, text
    assert password not in gw.proc.output()


def test_auth_before_tls_is_not_offered_and_refused(
    serve: Callable[..., Gateway], pki: Pki
) -> None:
    gw = _submit_gateway(serve, pki)
    with gw.smtp() as client:
        assert not client.has_extn("auth")
        code, text = client.docmd("AUTH", f"PLAIN {_plain('scanner', PASSWORD)}")
        assert (code, text.decode()[:6]) == (538, "5.7.11"), text
        assert client.mail(SENDER)[0] == 554
    assert not gw.proc.events("authenticated")


def test_auth_without_inbound_tls_is_not_a_command(serve: Callable[..., Gateway]) -> None:
    gw = serve()
    with gw.smtp() as client:
        assert not client.has_extn("auth")
        code, _ = client.docmd("AUTH", f"PLAIN {_plain('scanner', PASSWORD)}")
        assert code == 503


def test_auth_is_throttled_after_failures_even_for_the_right_password(
    serve: Callable[..., Gateway], pki: Pki
) -> None:
    gw = _submit_gateway(serve, pki)
    with starttls(gw, client_context(pki.ca.ca_file)) as client:
        codes = []
        for _ in range(8):  # a few failures are free; then each one doubles the wait
            code, _ = client.docmd("AUTH", f"PLAIN {_plain('scanner', 'a wrong guess!')}")
            codes.append(code)
            if code == 454:
                break
        assert codes[-1] == 454, codes
        assert codes.count(535) >= 3, codes
        code, text = client.docmd("AUTH", f"PLAIN {_plain('scanner', PASSWORD)}")
        assert (code, text.decode()[:5]) == (454, "4.7.0"), text
        assert client.mail(SENDER)[0] == 554
    assert gw.proc.events("authentication failed", why="throttled")
