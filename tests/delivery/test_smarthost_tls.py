"""The smarthost over TLS, against a recording upstream on loopback with test-CA certificates:
the certificate verified for [relay] tls_name (or host, an IP address checked against the IP
subjectAltName), a failure a 4xx with nothing sent; the evidence of how the copy left; RFC 8689
REQUIRETLS sent, left out or insisted on per [relay] requiretls."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.config.settings import RelaySettings
from gateway.config.values import RelayTls, RequireTlsMode
from gateway.delivery.smarthost import Smarthost, relay_tls_context
from gateway.delivery.transport import Outcome, PeerAuth, Recipient, Transaction
from gateway.errors import DeliveryFailed
from rig.pki import Leaf, RigCA
from rig.upstream import Upstream

RELAY_NAME = "relay.school.test"
ADDRESS = "127.0.0.61"
TO = "colleague@secure.test"
DATA = b"Subject: hello\r\nMessage-ID: <tls1@school.test>\r\n\r\nBody\r\n"


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> RigCA:
    return RigCA(tmp_path_factory.mktemp("relay-pki"))


def server_context(leaf: Leaf) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(leaf.cert_file, leaf.key_file)
    return context


@pytest.fixture
def serving(ca: RigCA) -> Iterator[list[Upstream]]:
    started: list[Upstream] = []
    yield started
    for server in started:
        server.close()


def start(started: list[Upstream], leaf: Leaf, implicit: bool = False) -> Upstream:
    server = Upstream(host=ADDRESS, tls=server_context(leaf), implicit=implicit, name=RELAY_NAME)
    started.append(server.start())
    return server


def settings(
    upstream: Upstream,
    ca: RigCA | None,
    *,
    tls: RelayTls = RelayTls.STARTTLS,
    tls_name: str = RELAY_NAME,
    requiretls: RequireTlsMode = RequireTlsMode.WHEN_OFFERED,
) -> RelaySettings:
    return RelaySettings(
        host=upstream.host,
        port=upstream.port,
        tls=tls,
        ca_file=str(ca.ca_file) if ca else "",
        timeout=5.0,
        tls_name=tls_name,
        requiretls=requiretls,
    )


@pytest.fixture
async def closing() -> AsyncIterator[list[Smarthost]]:
    made: list[Smarthost] = []
    yield made
    for transport in made:
        await transport.close()


def smarthost(
    made: list[Smarthost], relay: RelaySettings, context: ssl.SSLContext | None
) -> Smarthost:
    transport = Smarthost(relay, "gateway.school.test", context)
    made.append(transport)
    return transport


def verifying(relay: RelaySettings) -> ssl.SSLContext | None:
    if relay.tls is RelayTls.NONE:
        return None
    return relay_tls_context(Path(relay.ca_file) if relay.ca_file else None)


def transaction(*, flagged: bool = False, requiretls: bool = False) -> Transaction:
    return Transaction(
        "head@school.test", (Recipient(TO),), DATA, flagged=flagged, requiretls=requiretls
    )


# ---- the certificate


@pytest.mark.parametrize(
    "tls", [RelayTls.STARTTLS, RelayTls.IMPLICIT], ids=["starttls", "implicit"]
)
async def test_a_verified_smarthost_takes_the_message_and_the_evidence_says_how(
    ca: RigCA, serving: list[Upstream], closing: list[Smarthost], tls: RelayTls
) -> None:
    upstream = start(serving, ca.issue((RELAY_NAME,)), implicit=tls is RelayTls.IMPLICIT)
    relay = settings(upstream, ca, tls=tls)
    sent = await smarthost(closing, relay, verifying(relay)).send(transaction())

    assert sent.accepted == [TO]
    [message] = upstream.messages
    assert message.tls_version in ("TLSv1.2", "TLSv1.3")
    evidence = sent.evidence
    assert evidence is not None
    assert (evidence.host, evidence.address, evidence.port) == (RELAY_NAME, ADDRESS, upstream.port)
    assert (evidence.tls_version, evidence.cipher) == (message.tls_version, message.cipher)
    assert evidence.authenticated is PeerAuth.SMARTHOST
    assert evidence.at > 0
    assert "verified by smarthost-verified" in evidence.describe()


async def test_an_ip_address_host_is_checked_against_the_ip_subject_alt_name(
    ca: RigCA, serving: list[Upstream], closing: list[Smarthost]
) -> None:
    upstream = start(serving, ca.issue((ADDRESS,), stem="relay-by-ip"))
    relay = settings(upstream, ca, tls_name="")
    sent = await smarthost(closing, relay, verifying(relay)).send(transaction())
    assert sent.accepted == [TO]
    assert sent.evidence is not None
    assert sent.evidence.host == ADDRESS
    assert sent.evidence.authenticated is PeerAuth.SMARTHOST


@dataclass(frozen=True)
class Unverified:
    names: tuple[str, ...]
    tls_name: str
    other_ca: bool
    problem: str


UNVERIFIED = {
    "another name": Unverified(("mail.elsewhere.test",), RELAY_NAME, False, "mismatch"),
    "tls_name, not the host, is checked": Unverified((ADDRESS,), RELAY_NAME, False, "mismatch"),
    "an IP host without that IP SAN": Unverified((RELAY_NAME,), "", False, "mismatch"),
    "an unknown CA": Unverified((RELAY_NAME,), RELAY_NAME, True, "unable to get local issuer"),
}


@pytest.mark.parametrize(
    "tls", [RelayTls.STARTTLS, RelayTls.IMPLICIT], ids=["starttls", "implicit"]
)
@pytest.mark.parametrize("case", UNVERIFIED.values(), ids=UNVERIFIED.keys())
async def test_a_certificate_that_does_not_verify_is_a_4xx_and_nothing_is_sent(
    ca: RigCA,
    tmp_path: Path,
    serving: list[Upstream],
    closing: list[Smarthost],
    tls: RelayTls,
    case: Unverified,
) -> None:
    issuer = RigCA(tmp_path / "other", "Someone Else's Root") if case.other_ca else ca
    upstream = start(serving, issuer.issue(case.names), implicit=tls is RelayTls.IMPLICIT)
    relay = settings(upstream, ca, tls=tls, tls_name=case.tls_name)

    with pytest.raises(DeliveryFailed) as failed:
        await smarthost(closing, relay, verifying(relay)).send(transaction(flagged=True))

    assert failed.value.code // 100 == 4
    assert Outcome(failed.value.outcome) is Outcome.DEFERRED
    assert "certificate not verified" in failed.value.text
    assert case.problem in failed.value.text
    assert upstream.messages == []
    assert not any(line.upper().startswith("MAIL") for line in upstream.transcript)


async def test_plaintext_evidence_says_no_tls_and_no_authentication(
    serving: list[Upstream], closing: list[Smarthost]
) -> None:
    upstream = Upstream(host=ADDRESS).start()
    serving.append(upstream)
    relay = settings(upstream, None, tls=RelayTls.NONE)
    sent = await smarthost(closing, relay, None).send(transaction())
    assert sent.evidence is not None
    assert (sent.evidence.tls_version, sent.evidence.cipher) == ("", "")
    assert sent.evidence.authenticated is PeerAuth.NONE
    assert sent.evidence.describe().endswith("without TLS")


# ---- REQUIRETLS (RFC 8689)


@dataclass(frozen=True)
class Case:
    mode: RequireTlsMode
    flagged: bool
    advertised: bool
    asked: bool = False  # the client's own REQUIRETLS
    tls: RelayTls = RelayTls.STARTTLS
    verify: bool = True
    sent_with: bool | None = None  # None: nothing sent
    code: int = 0  # the failure, when nothing is sent


OFF, OFFERED, REQUIRE = RequireTlsMode.OFF, RequireTlsMode.WHEN_OFFERED, RequireTlsMode.REQUIRE
REQUIRETLS_CASES = {
    "flagged, offered": Case(OFFERED, True, True, sent_with=True),
    "unflagged, offered": Case(OFFERED, False, True, sent_with=False),
    "flagged, off": Case(OFF, True, True, sent_with=False),
    "flagged, not advertised": Case(OFFERED, True, False, sent_with=False),
    "require, advertised": Case(REQUIRE, True, True, sent_with=True),
    "require, not advertised": Case(REQUIRE, True, False, code=451),
    "require, plaintext relay": Case(REQUIRE, True, True, tls=RelayTls.NONE, code=451),
    "require, unverified TLS": Case(REQUIRE, True, True, verify=False, code=451),
    "require, unflagged": Case(REQUIRE, False, False, sent_with=False),
    "client asked, off": Case(OFF, False, True, asked=True, sent_with=True),
    "client asked, not advertised": Case(OFFERED, False, False, asked=True, code=550),
    "client asked, unverified TLS": Case(OFFERED, True, True, asked=True, verify=False, code=550),
}


def unverifying() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


@pytest.mark.parametrize("case", REQUIRETLS_CASES.values(), ids=REQUIRETLS_CASES.keys())
async def test_requiretls(
    ca: RigCA, serving: list[Upstream], closing: list[Smarthost], case: Case
) -> None:
    upstream = start(serving, ca.issue((RELAY_NAME,)))
    upstream.requiretls = case.advertised
    relay = settings(upstream, ca, tls=case.tls, requiretls=case.mode)
    transport = smarthost(closing, relay, verifying(relay) if case.verify else unverifying())

    sending = transport.send(transaction(flagged=case.flagged, requiretls=case.asked))
    if case.sent_with is None:
        with pytest.raises(DeliveryFailed) as failed:
            await sending
        assert (failed.value.code, failed.value.stage) == (case.code, "MAIL")
        if case.code == 550:
            assert failed.value.text == "5.7.30 REQUIRETLS support required"
        assert upstream.messages == []
        return
    sent = await sending
    assert sent.accepted == [TO]
    [message] = upstream.messages
    assert ("REQUIRETLS" in message.mail_line.upper().split()) is case.sent_with
