"""The proof of delivery for a copy delivered directly: through ``Delivery`` over the real
``MxTransport`` to the rig's MX servers, the trail's entry names the MX host that took it, how
MTA-STS vouched for it, the TLS it used, and the host passed over before it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from gateway.audit.proofwords import delivered_words
from gateway.config import loader
from gateway.delivery.deliver import Delivery, Trace
from gateway.delivery.transport import Recipient, Transaction
from gateway.runtime import parts
from gateway.store import AuditRecord
from rig import mx
from rig.rig import Rig
from rig.zones import self_signed

DOMAIN = "deliver-sts.test"
RECIPIENT = f"lead@{DOMAIN}"


class Journal:
    def __init__(self) -> None:
        self.audit: list[AuditRecord] = []

    async def relayed(self, key: str) -> frozenset[str]:
        return frozenset()

    async def record_relayed(
        self, key: str, recipients: Sequence[str], audit: Sequence[AuditRecord] = ()
    ) -> None:
        self.audit.extend(audit)


async def test_a_direct_delivery_is_proven_with_the_mx_host_and_its_authentication(
    rig: Rig, tmp_path: Path
) -> None:
    row = rig.domain(DOMAIN)
    behaviours = (mx.OTHER_NAME, mx.GOOD)  # mx1's certificate names another host: passed over
    hosts = {h: (row.address(h), b) for h, b in zip(row.mx_hosts, behaviours, strict=True)}
    leaves = {h: rig.certs[self_signed(h)] for h in hosts if self_signed(h) in rig.certs}
    with mx.mx_servers(rig.ca, hosts, leaves) as servers:
        path = rig.write_config(
            tmp_path / "gateway.toml",
            delivery={
                "mx_port": servers.port,
                "allow_private_addresses": True,
                "ca_file": rig.ca_file,
                "timeout": "2s",
            },
        )
        settings = loader.load(path)
        allowlist = parts.load_allowlist(settings).allowlist
        journal = Journal()
        async with parts.open_posture(settings, allowlist) as posture:
            delivery = Delivery(parts.build_mx_transport(settings, posture), journal, "gw.test")
            try:
                report = await delivery.deliver(
                    Transaction(
                        "head@school.test",
                        (Recipient(RECIPIENT),),
                        b"Subject: referral\r\n\r\nConfidential\r\n",
                        flagged=True,
                    ),
                    "k",
                    trace=Trace("mta", "127.0.0.1", "ESMTP", "q9", "flagged", message_id="<p@s>"),
                )
            finally:
                await delivery.close()
    assert report.accepted == (RECIPIENT,)
    [entry] = journal.audit
    proof = entry.data
    assert entry.event == "delivered"
    assert (proof["route"], proof["host"]) == ("mx", f"mx2.{DOMAIN}")
    assert proof["address"] == row.address(f"mx2.{DOMAIN}")
    assert proof["authenticated"] == "mta-sts-webpki"
    assert proof["tls_version"].startswith("TLSv1.")
    assert proof["cipher"]
    assert proof["reply"].startswith("250")
    [skipped] = proof["skipped"]
    assert skipped.startswith(f"mx1.{DOMAIN}")
    assert delivered_words(proof).startswith(
        f"Delivered to {RECIPIENT} via mx2.{DOMAIN} [{proof['address']}] over TLSv1."
    )
    assert "certificate verified by MTA-STS" in delivered_words(proof)
