"""Direct delivery against the rig's signed zones and MTA-STS policies, to MX servers on their
own loopback addresses that misbehave on purpose (rig.mx).

Flagged mail reaches an MX host only over TLS the domain's policy authenticates: the host that
fails is named with its reason and the next one tried; when none is left the failure says
"tls". Unflagged mail is delivered as a good MTA does: the same rules where a domain
publishes them, opportunistic TLS elsewhere. No recorded flagged message ever came in clear.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import structlog

from gateway.config import loader
from gateway.delivery.mx import MxTransport
from gateway.delivery.transport import Outcome, PeerAuth, Recipient, Sent, Transaction
from gateway.errors import DeliveryFailed
from gateway.runtime import parts
from rig import mx
from rig.mx import MxServers
from rig.rig import Rig
from rig.zones import self_signed

STS, PARTIAL, DANE, PLAIN = (
    "deliver-sts.test",
    "deliver-partial.test",
    "deliver-dane.test",
    ("deliver-plain.test"),
)
DATA = b"Subject: referral\r\nMessage-ID: <mx1@school.test>\r\n\r\nConfidential\r\n"


@dataclass
class Result:
    sent: Sent | None
    failed: DeliveryFailed | None
    servers: MxServers

    def delivered_to(self) -> str | None:
        hosts = [h for h, server in self.servers.servers.items() if server.messages]
        assert len(hosts) <= 1, f"delivered more than once: {hosts}"
        return hosts[0] if hosts else None

    def recorded_tls(self) -> list[str]:
        return [m.tls_version for s in self.servers.servers.values() for m in s.messages]


@contextlib.asynccontextmanager
async def direct(
    rig: Rig, tmp_path: Path, servers: MxServers, *, private: bool = True
) -> AsyncIterator[MxTransport]:
    """The transport as the runtime builds it, over the rig's DNS and policies."""
    path = rig.write_config(
        tmp_path / "gateway.toml",
        delivery={
            "mx_port": servers.port,
            "allow_private_addresses": private,
            "ca_file": rig.ca_file,
            "timeout": "2s",
        },
    )
    settings = loader.load(path)
    allowlist = parts.load_allowlist(settings).allowlist
    async with parts.open_posture(settings, allowlist) as posture:
        transport = parts.build_mx_transport(settings, posture)
        try:
            yield transport
        finally:
            await transport.close()


def servers_for(
    rig: Rig, domain: str, behaviours: tuple[str, ...]
) -> contextlib.AbstractContextManager[MxServers]:
    row = rig.domain(domain)
    hosts = {h: (row.address(h), b) for h, b in zip(row.mx_hosts, behaviours, strict=True)}
    leaves = {h: rig.certs[self_signed(h)] for h in hosts if self_signed(h) in rig.certs}
    return mx.mx_servers(rig.ca, hosts, leaves)


def transaction(domain: str, *, recipients: tuple[str, ...] = (), **flags: bool) -> Transaction:
    return Transaction(
        "head@school.test",
        tuple(Recipient(r) for r in (recipients or (f"lead@{domain}",))),
        DATA,
        **flags,
    )


async def deliver(
    rig: Rig,
    tmp_path: Path,
    domain: str,
    behaviours: tuple[str, ...],
    *,
    flagged: bool = True,
    requiretls: bool = False,
    private: bool = True,
    tweak: Callable[[MxServers], None] | None = None,
    recipients: tuple[str, ...] = (),
) -> Result:
    with servers_for(rig, domain, behaviours) as servers:
        if tweak is not None:
            tweak(servers)
        t = transaction(domain, recipients=recipients, flagged=flagged, requiretls=requiretls)
        async with direct(rig, tmp_path, servers, private=private) as transport:
            try:
                return Result(await transport.send(t), None, servers)
            except DeliveryFailed as exc:
                return Result(None, exc, servers)


def mx1(domain: str) -> str:
    return f"mx1.{domain}"


def mx2(domain: str) -> str:
    return f"mx2.{domain}"


def at(host: str, rig: Rig) -> str:
    domain = host.split(".", 1)[1]
    return f"{host} [{rig.domain(domain).address(host)}]"


# id, domain, (mx1, mx2) behaviours, host delivered to (None: nothing), how it was
# authenticated, what the skipped line for mx1 says (None: mx1 not skipped).
DELIVERED = [
    ("sts-good", STS, (mx.GOOD, mx.GOOD), 1, PeerAuth.MTA_STS, None),
    (
        "sts-other-name",
        STS,
        (mx.OTHER_NAME, mx.GOOD),
        2,
        PeerAuth.MTA_STS,
        "certificate does not name mx1.deliver-sts.test",
    ),
    ("sts-expired", STS, (mx.EXPIRED, mx.GOOD), 2, PeerAuth.MTA_STS, "certificate expired"),
    (
        "sts-self-signed",
        STS,
        (mx.SELF_SIGNED, mx.GOOD),
        2,
        PeerAuth.MTA_STS,
        "not signed by a trusted authority",
    ),
    (
        "sts-no-starttls",
        STS,
        (mx.NO_STARTTLS, mx.GOOD),
        2,
        PeerAuth.MTA_STS,
        "STARTTLS not offered",
    ),
    (
        "sts-plaintext-server",
        STS,
        (mx.PLAINTEXT, mx.GOOD),
        2,
        PeerAuth.MTA_STS,
        "STARTTLS not offered",
    ),
    ("sts-tls10-only", STS, (mx.TLS10_ONLY, mx.GOOD), 2, PeerAuth.MTA_STS, "TLS handshake failed"),
    ("sts-4xx-then-next", STS, (mx.TEMPFAIL, mx.GOOD), 2, PeerAuth.MTA_STS, "MAIL: 451"),
    ("sts-first-down", STS, (mx.DOWN, mx.GOOD), 2, PeerAuth.MTA_STS, "no connection"),
    (
        "sts-host-not-in-policy",
        PARTIAL,
        (mx.GOOD, mx.GOOD),
        2,
        PeerAuth.MTA_STS,
        "not named by the MTA-STS policy",
    ),
    ("dane-ee", DANE, (mx.GOOD, mx.GOOD), 1, PeerAuth.DANE_EE, None),
    (
        "dane-ee-mismatch-then-ta",
        DANE,
        (mx.TLSA_MISMATCH, mx.GOOD),
        2,
        PeerAuth.DANE_TA,
        "certificate does not match the TLSA records",
    ),
    (
        "dane-no-starttls",
        DANE,
        (mx.NO_STARTTLS, mx.GOOD),
        2,
        PeerAuth.DANE_TA,
        "STARTTLS not offered",
    ),
]


@pytest.mark.parametrize(
    ("domain", "behaviours", "host", "auth", "why"),
    [case[1:] for case in DELIVERED],
    ids=[case[0] for case in DELIVERED],
)
async def test_flagged_delivered_only_where_the_policy_holds(
    rig: Rig,
    tmp_path: Path,
    domain: str,
    behaviours: tuple[str, str],
    host: int,
    auth: PeerAuth,
    why: str | None,
) -> None:
    result = await deliver(rig, tmp_path, domain, behaviours)
    assert result.failed is None, result.failed and result.failed.hosts
    assert result.sent is not None
    name = mx1(domain) if host == 1 else mx2(domain)
    assert result.delivered_to() == name
    assert result.recorded_tls()
    assert all(result.recorded_tls()), "flagged mail went in clear"
    evidence = result.sent.evidence
    assert evidence is not None
    assert (evidence.host, evidence.authenticated) == (name, auth)
    assert evidence.address == rig.domain(domain).address(name)
    assert evidence.port == result.servers.port
    assert evidence.tls_version == result.recorded_tls()[0]
    assert evidence.cipher
    assert evidence.at > 0
    assert result.sent.accepted == [f"lead@{domain}"]
    if why is None:
        assert result.sent.skipped == ()
    else:
        [line] = result.sent.skipped
        assert line.startswith(mx1(domain)), line
        assert why in line, line


# id, domain, behaviours, stage, outcome, a phrase per MX host's failure line
FAILED = [
    (
        "sts-both-unverified",
        STS,
        (mx.OTHER_NAME, mx.EXPIRED),
        "tls",
        Outcome.DEFERRED,
        ("does not name", "expired"),
    ),
    (
        "sts-downgraded",
        STS,
        (mx.NO_STARTTLS, mx.PLAINTEXT),
        "tls",
        Outcome.DEFERRED,
        ("STARTTLS not offered", "STARTTLS not offered"),
    ),
    (
        "dane-both-mismatch",
        DANE,
        (mx.TLSA_MISMATCH, mx.SELF_SIGNED),
        "tls",
        Outcome.DEFERRED,
        ("TLSA", "TLSA"),
    ),
    (
        "dane-ta-expired",
        DANE,
        (mx.TLSA_MISMATCH, mx.EXPIRED),
        "tls",
        Outcome.DEFERRED,
        ("TLSA", "TLSA"),
    ),
    (
        "no-policy",
        PLAIN,
        (mx.GOOD, mx.GOOD),
        "tls",
        Outcome.DEFERRED,
        ("neither DANE nor", "neither DANE nor"),
    ),
    ("both-4xx", STS, (mx.TEMPFAIL, mx.TEMPFAIL), "MAIL", Outcome.DEFERRED, ("451", "451")),
    (
        "both-down",
        STS,
        (mx.DOWN, mx.DOWN),
        "connect",
        Outcome.UNREACHABLE,
        ("no connection", "no connection"),
    ),
]


@pytest.mark.parametrize(
    ("domain", "behaviours", "stage", "outcome", "why"),
    [case[1:] for case in FAILED],
    ids=[case[0] for case in FAILED],
)
async def test_flagged_never_leaves_unprotected(
    rig: Rig,
    tmp_path: Path,
    domain: str,
    behaviours: tuple[str, str],
    stage: str,
    outcome: Outcome,
    why: tuple[str, str],
) -> None:
    result = await deliver(rig, tmp_path, domain, behaviours)
    assert result.sent is None
    assert result.failed is not None
    assert result.delivered_to() is None
    assert (result.failed.stage, result.failed.outcome) == (stage, outcome.value)
    assert result.failed.temporary
    lines = result.failed.hosts
    assert len(lines) == 2, lines
    for line, host, phrase in zip(lines, (mx1(domain), mx2(domain)), why, strict=True):
        assert line.startswith(host), lines
        assert phrase in line, lines


async def test_a_5xx_is_final_and_the_next_host_is_not_tried(rig: Rig, tmp_path: Path) -> None:
    result = await deliver(rig, tmp_path, STS, (mx.PERMFAIL, mx.GOOD))
    assert result.failed is not None
    assert (result.failed.stage, result.failed.outcome, result.failed.code) == (
        "MAIL",
        "refused",
        550,
    )
    assert not result.failed.temporary
    assert result.servers[mx2(STS)].connections == 0


async def test_a_slow_host_times_out_after_data_and_is_not_retried_elsewhere(
    rig: Rig, tmp_path: Path
) -> None:
    result = await deliver(rig, tmp_path, STS, (mx.SLOW, mx.GOOD))
    assert result.failed is not None
    assert (result.failed.stage, result.failed.outcome) == ("DATA", Outcome.TIMED_OUT.value)
    assert result.servers[mx2(STS)].connections == 0  # mx1 may have the message


async def test_refusal_at_rcpt_is_per_recipient(rig: Rig, tmp_path: Path) -> None:
    def refuse_bob(servers: MxServers) -> None:
        servers[mx1(STS)].fail_rcpt = {f"bob@{STS}": 550}

    recipients = (f"lead@{STS}", f"bob@{STS}")
    result = await deliver(
        rig, tmp_path, STS, (mx.GOOD, mx.GOOD), tweak=refuse_bob, recipients=recipients
    )
    assert result.sent is not None
    assert result.sent.accepted == [f"lead@{STS}"]
    assert result.sent.refused[f"bob@{STS}"].code == 550
    [message] = result.servers[mx1(STS)].messages
    assert message.rcpt_tos == (f"lead@{STS}",)


# Unflagged: id, domain, behaviours, host delivered to, TLS expected, auth
UNFLAGGED = [
    ("opportunistic-tls", PLAIN, (mx.SELF_SIGNED, mx.GOOD), 1, True, PeerAuth.NONE),
    ("opportunistic-plaintext", PLAIN, (mx.NO_STARTTLS, mx.GOOD), 1, False, PeerAuth.NONE),
    ("handshake-fails-retried-plain", PLAIN, (mx.TLS10_ONLY, mx.GOOD), 1, False, PeerAuth.NONE),
    ("sts-enforced-for-all-mail", STS, (mx.OTHER_NAME, mx.GOOD), 2, True, PeerAuth.MTA_STS),
    ("policy-names-mx2-only", PARTIAL, (mx.GOOD, mx.GOOD), 2, True, PeerAuth.MTA_STS),
    ("dane-enforced-for-all-mail", DANE, (mx.TLSA_MISMATCH, mx.GOOD), 2, True, PeerAuth.DANE_TA),
]


@pytest.mark.parametrize(
    ("domain", "behaviours", "host", "tls", "auth"),
    [case[1:] for case in UNFLAGGED],
    ids=[case[0] for case in UNFLAGGED],
)
async def test_unflagged_as_a_good_mta_sends_it(
    rig: Rig,
    tmp_path: Path,
    domain: str,
    behaviours: tuple[str, str],
    host: int,
    tls: bool,
    auth: PeerAuth,
) -> None:
    result = await deliver(rig, tmp_path, domain, behaviours, flagged=False)
    assert result.sent is not None, result.failed and result.failed.hosts
    name = mx1(domain) if host == 1 else mx2(domain)
    assert result.delivered_to() == name
    assert bool(result.recorded_tls()[0]) is tls
    assert result.sent.evidence is not None
    assert result.sent.evidence.authenticated is auth
    assert bool(result.sent.evidence.tls_version) is tls


async def test_unflagged_mail_is_not_sent_where_the_policy_forbids(
    rig: Rig, tmp_path: Path
) -> None:
    result = await deliver(rig, tmp_path, STS, (mx.OTHER_NAME, mx.NO_STARTTLS), flagged=False)
    assert result.failed is not None
    assert result.failed.stage == "tls"
    assert result.delivered_to() is None


@pytest.mark.parametrize(
    ("domain", "behaviours", "flagged", "delivered"),
    [
        (STS, (mx.GOOD, mx.GOOD), True, True),
        (DANE, (mx.GOOD, mx.GOOD), True, True),
        (STS, (mx.NO_REQUIRETLS, mx.NO_REQUIRETLS), True, False),
        (PLAIN, (mx.GOOD, mx.GOOD), False, False),  # opportunistic TLS is no authenticated peer
    ],
    ids=["mta-sts-advertised", "dane-advertised", "not-advertised", "unauthenticated"],
)
async def test_requiretls(
    rig: Rig,
    tmp_path: Path,
    domain: str,
    behaviours: tuple[str, str],
    flagged: bool,
    delivered: bool,
) -> None:
    result = await deliver(rig, tmp_path, domain, behaviours, flagged=flagged, requiretls=True)
    if delivered:
        assert result.sent is not None
        [message] = result.servers[mx1(domain)].messages
        assert "REQUIRETLS" in message.mail_options
        assert message.tls_version
        return
    assert result.failed is not None
    assert (result.failed.code, result.failed.text) == (550, "5.7.30 REQUIRETLS support required")
    assert (result.failed.stage, result.failed.outcome) == ("tls", "refused")
    assert result.delivered_to() is None


async def test_private_addresses_are_never_dialled_unless_allowed(rig: Rig, tmp_path: Path) -> None:
    result = await deliver(rig, tmp_path, STS, (mx.GOOD, mx.GOOD), private=False)
    assert result.failed is not None
    assert result.failed.stage == "connect"
    assert all("not dialled" in line for line in result.failed.hosts)
    assert sum(s.connections for s in result.servers.servers.values()) == 0


async def test_null_mx_is_a_permanent_refusal(rig: Rig, tmp_path: Path) -> None:
    settings = loader.load(
        rig.write_config(tmp_path / "g.toml", delivery={"allow_private_addresses": True})
    )
    async with parts.open_posture(settings, parts.load_allowlist(settings).allowlist) as posture:
        transport = parts.build_mx_transport(settings, posture)
        with pytest.raises(DeliveryFailed) as caught:
            await transport.send(Transaction("a@school.test", (Recipient("x@nullmx.test"),), DATA))
    assert (caught.value.code, caught.value.outcome) == (556, "refused")


async def test_one_transaction_one_domain(rig: Rig, tmp_path: Path) -> None:
    settings = loader.load(rig.write_config(tmp_path / "g.toml"))
    async with parts.open_posture(settings, parts.load_allowlist(settings).allowlist) as posture:
        transport = parts.build_mx_transport(settings, posture)
        mixed = (Recipient(f"a@{STS}"), Recipient(f"b@{DANE}"))
        with pytest.raises(ValueError, match="one recipient domain"):
            await transport.send(Transaction("a@school.test", mixed, DATA))


async def test_a_4xx_then_250_on_the_next_attempt(rig: Rig, tmp_path: Path) -> None:
    with servers_for(rig, STS, (mx.TEMPFAIL, mx.TEMPFAIL)) as servers:
        async with direct(rig, tmp_path, servers) as transport:
            with pytest.raises(DeliveryFailed) as first:
                await transport.send(transaction(STS, flagged=True))
            assert first.value.temporary
            servers[mx1(STS)].fail_mail = None
            sent = await transport.send(transaction(STS, flagged=True))
    assert sent.evidence is not None
    assert sent.evidence.host == mx1(STS)
    [message] = servers[mx1(STS)].messages
    assert message.tls_version
    assert not servers[mx2(STS)].messages


UNUSABLE = "daneunusable.test"  # its TLSA records are PKIX-only: TLS mandatory, unauthenticated


@pytest.mark.parametrize(
    ("behaviour", "flagged", "delivered"),
    [(mx.GOOD, True, False), (mx.SELF_SIGNED, False, True), (mx.NO_STARTTLS, False, False)],
    ids=["flagged-not-a-candidate", "unflagged-encrypted", "unflagged-no-plaintext-fallback"],
)
async def test_unusable_tlsa_makes_tls_mandatory_but_proves_nothing(
    rig: Rig, tmp_path: Path, behaviour: str, flagged: bool, delivered: bool
) -> None:
    result = await deliver(rig, tmp_path, UNUSABLE, (behaviour,), flagged=flagged)
    if delivered:
        assert result.sent is not None
        assert result.sent.evidence is not None
        assert result.sent.evidence.authenticated is PeerAuth.NONE
        assert all(result.recorded_tls())
        return
    assert result.failed is not None
    assert result.failed.stage == "tls"
    assert result.delivered_to() is None


async def test_each_host_tried_is_logged_without_subject_or_body(rig: Rig, tmp_path: Path) -> None:
    with structlog.testing.capture_logs() as events:
        result = await deliver(rig, tmp_path, STS, (mx.EXPIRED, mx.GOOD))
    assert result.sent is not None
    attempts = [e for e in events if e["event"] == "mx-attempt"]
    assert [(e["host"], e["outcome"]) for e in attempts] == [
        (mx1(STS), "skipped"),
        (mx2(STS), "delivered"),
    ]
    assert attempts[1]["auth"] == PeerAuth.MTA_STS.value
    assert attempts[1]["tls"].startswith("TLSv1.")
    assert "referral" not in repr(events)
    assert "Confidential" not in repr(events)
