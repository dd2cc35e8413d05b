"""`gateway serve` end to end: whom a client trusted by its certificate or its submit account
may send as. Exchange Online's connectors of every tenant present the same certificate, so
such a client may use only the local domains (school.test here) as its envelope sender
(unless null) and in From:; anything else is refused with 550 5.7.1, at MAIL or after DATA.
A client trusted by its network is not bound."""

from __future__ import annotations

import smtplib
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import pytest

from rig.gatewayproc import Gateway, message, transact
from support.inboundtls import PASSWORD, Pki, add_account, client_context, make_pki, starttls

pytestmark = pytest.mark.e2e

TO = ["a@secure.test"]
CONNECTOR = "mail.protection.partner.test"
ELSEWHERE = ["192.0.2.0/24"]  # trusted_networks without loopback
Session = Callable[[], AbstractContextManager[smtplib.SMTP]]
REFUSED = (550, "5.7.1 Sender domain not allowed for this client")


@dataclass(frozen=True)
class SenderCase:
    name: str
    sender: str  # the envelope sender ("" is the null sender)
    from_: str  # the From: field's value ("" leaves the field out)
    bound: tuple[int, str] | None  # the reply to a bound client; None: accepted


CASES = [
    SenderCase("ours", "head@school.test", "head@school.test", None),
    SenderCase("ours in another case", "Head@School.TEST", "Head <HEAD@school.test>", None),
    SenderCase("null sender", "", "postmaster@school.test", None),
    SenderCase("envelope elsewhere", "ceo@tenant.test", "head@school.test", REFUSED),
    SenderCase("From: elsewhere", "head@school.test", "ceo@tenant.test", REFUSED),
    SenderCase("From: a subdomain", "head@school.test", "x@mail.school.test", REFUSED),
    SenderCase(
        "From: ours and elsewhere",
        "head@school.test",
        "head@school.test, ceo@tenant.test",
        REFUSED,
    ),
    SenderCase("null sender, From: elsewhere", "", "ceo@tenant.test", REFUSED),
    SenderCase("no From:", "head@school.test", "", REFUSED),
]


def _message(case: SenderCase) -> bytes:
    sent = message(flagged=False, to=TO)
    header = b"From: head@school.test\r\n"
    return sent.replace(header, f"From: {case.from_}\r\n".encode() if case.from_ else b"", 1)


def _cert_gateway(serve: Callable[..., Gateway], pki: Pki) -> tuple[Gateway, Session]:
    gw = serve(
        smtp=pki.smtp(
            trusted_networks=ELSEWHERE,
            trusted_client_names=[CONNECTOR],
            client_ca_file=str(pki.ca.ca_file),
        )
    )
    leaf = pki.ca.issue((CONNECTOR,), client=True)
    return gw, lambda: starttls(gw, client_context(pki.ca.ca_file, cert=leaf))


def _account_gateway(serve: Callable[..., Gateway], pki: Pki) -> tuple[Gateway, Session]:
    gw = serve(smtp=pki.smtp(trusted_networks=ELSEWHERE))
    add_account(gw.proc.config, "scanner", "submit")
    return gw, lambda: starttls(gw, client_context(pki.ca.ca_file))


def _network_gateway(serve: Callable[..., Gateway], pki: Pki) -> tuple[Gateway, Session]:
    gw = serve(smtp=pki.smtp())  # loopback is a trusted network
    return gw, lambda: starttls(gw, client_context(pki.ca.ca_file))


IDENTITIES = {
    "certificate": (_cert_gateway, True),
    "submit account": (_account_gateway, True),
    "trusted network": (_network_gateway, False),
}


@pytest.mark.parametrize("identity", IDENTITIES)
def test_a_client_trusted_by_certificate_or_account_sends_only_as_the_local_domains(
    serve: Callable[..., Gateway], tmp_path: Path, identity: str
) -> None:
    start, bound = IDENTITIES[identity]
    gw, session = start(serve, make_pki(tmp_path / "pki"))
    accepted: list[bytes] = []
    with session() as client:
        if identity == "submit account":
            client.user, client.password = "scanner", PASSWORD
            assert client.auth("PLAIN", client.auth_plain)[0] == 235
        for case in CASES:
            sent = _message(case)
            reply = transact(client, case.sender, TO, sent)
            expected = case.bound if bound else None
            if expected is None:
                assert reply.code == 250, (case.name, reply)
                accepted.append(sent)
            else:
                assert (reply.code, reply.text) == expected, (case.name, reply)
    for sent in accepted:
        gw.wait_relayed(1, of=sent)
    assert len(gw.relayed()) == len(accepted), [c.name for c in CASES]
