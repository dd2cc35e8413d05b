"""The rig itself: real DNS answers with real AD bits, and nginx serving each policy as specified.

These run before the gateway exists; if they fail, the end-to-end tests cannot be trusted.
"""

import datetime as dt
import re
import ssl
import time
import tomllib
from pathlib import Path
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import httpx
import pytest

from rig import Rig
from rig.zones import POLICY_PATH, ZONES, Domain

pytestmark = pytest.mark.e2e

WITH_MX = [row for row in ZONES if row.mx and not row.dnssec_bogus]
WITH_STS = [row for row in ZONES if row.sts and not row.dnssec_bogus]
WITH_POLICY = [row for row in ZONES if row.policy is not None and not row.dnssec_bogus]
BOGUS = [row for row in ZONES if row.dnssec_bogus]


def ask(rig: Rig, name: str, rdtype: str, timeout: float = 2.0) -> dns.message.Message:
    """What the gateway will see: a query to unbound with the AD bit set."""
    q = dns.message.make_query(name, rdtype)
    q.flags |= dns.flags.AD
    return dns.query.udp(q, "127.0.0.1", port=rig.dns_port, timeout=timeout)


def rdatas(answer: dns.message.Message, rdtype: str) -> list[Any]:
    wanted = dns.rdatatype.from_text(rdtype)
    return [rd for rrset in answer.answer if rrset.rdtype == wanted for rd in rrset]


def assert_secure(answer: dns.message.Message) -> None:
    assert answer.rcode() == dns.rcode.NOERROR, dns.rcode.to_text(answer.rcode())
    assert answer.flags & dns.flags.AD, "answer not validated (no AD bit)"


def ids(rows: list[Domain]) -> list[str]:
    return [row.name for row in rows]


def test_started_quickly(rig: Rig) -> None:
    assert rig.start_seconds < 10, f"rig took {rig.start_seconds:.1f} s to start"


@pytest.mark.parametrize("row", WITH_MX, ids=ids(WITH_MX))
def test_mx_validated(rig: Rig, row: Domain) -> None:
    answer = ask(rig, row.name, "MX")
    assert_secure(answer)
    got = {
        (rd.preference, rd.exchange.to_text(omit_final_dot=True) or ".")
        for rd in rdatas(answer, "MX")
    }
    assert got == set(row.mx)


@pytest.mark.parametrize("row", WITH_MX, ids=ids(WITH_MX))
def test_addresses_validated(rig: Rig, row: Domain) -> None:
    for host in [row.mta_sts_host, *(h for h in row.mx_hosts if h != ".")]:
        answer = ask(rig, host, "A")
        assert_secure(answer)
        assert [rd.to_text() for rd in rdatas(answer, "A")] == [row.address(host)], host


@pytest.mark.parametrize("row", WITH_STS, ids=ids(WITH_STS))
def test_sts_record_strings(rig: Rig, row: Domain) -> None:
    answer = ask(rig, f"_mta-sts.{row.name}", "TXT")
    assert_secure(answer)
    got = {tuple(s.decode() for s in rd.strings) for rd in rdatas(answer, "TXT")}
    assert got == set(row.sts)


def test_multistring_record_is_two_strings(rig: Rig) -> None:
    answer = ask(rig, "_mta-sts.multistring.test", "TXT")
    [rd] = rdatas(answer, "TXT")
    assert rd.strings == (b"v=STSv1; ", b"id=multi1;")


def test_tlsrpt_present_and_absent(rig: Rig) -> None:
    answer = ask(rig, "_smtp._tls.secure.test", "TXT")
    assert_secure(answer)
    assert [rd.to_text() for rd in rdatas(answer, "TXT")] == [
        '"v=TLSRPTv1; rua=mailto:tlsrpt@secure.test"'
    ]
    missing = ask(rig, "_smtp._tls.notlsrpt.test", "TXT")
    # Proven absent: NXDOMAIN, validated.
    assert missing.rcode() == dns.rcode.NXDOMAIN
    assert missing.flags & dns.flags.AD


def test_no_sts_record_is_proven_absent(rig: Rig) -> None:
    answer = ask(rig, "_mta-sts.nosts.test", "TXT")
    assert answer.rcode() == dns.rcode.NXDOMAIN
    assert answer.flags & dns.flags.AD


@pytest.mark.parametrize("name", ["dane.test", "daneunusable.test"])
def test_tlsa_validated(rig: Rig, name: str) -> None:
    row = rig.domain(name)
    [tlsa] = row.tlsa
    answer = ask(rig, tlsa.owner, "TLSA")
    assert_secure(answer)
    [rd] = rdatas(answer, "TLSA")
    assert (rd.usage, rd.selector, rd.mtype) == (tlsa.usage, tlsa.selector, tlsa.mtype)
    assert rd.cert.hex() == rig.tlsa_data(tlsa)


def test_dane_tlsa_matches_the_mx_certificate(rig: Rig) -> None:
    # So a later SMTP test can present rig.certs["mx.dane.test"] and have DANE match it.
    leaf = rig.certs["mx.dane.test"]
    [rd] = rdatas(ask(rig, "_25._tcp.mx.dane.test", "TLSA"), "TLSA")
    assert rd.cert.hex() == leaf.tlsa_data(1, 1)


@pytest.mark.parametrize("row", BOGUS, ids=ids(BOGUS))
@pytest.mark.parametrize("label", ["", "_mta-sts.", "mta-sts."])
def test_bogus_zone_never_answers(rig: Rig, row: Domain, label: str) -> None:
    began = time.monotonic()
    try:
        answer = ask(rig, label + row.name, "TXT" if label == "_mta-sts." else "MX")
    except dns.exception.Timeout:
        return
    assert answer.rcode() == dns.rcode.SERVFAIL
    assert not answer.answer
    assert time.monotonic() - began < 2.0, "slower than the gateway's DNS timeout in tests"


def test_bogus_zone_has_data_behind_the_failure(rig: Rig) -> None:
    # The SERVFAIL comes from validation alone: with CD (checking disabled) the data is there.
    q = dns.message.make_query("servfail.test", "MX")
    q.flags |= dns.flags.CD
    answer = dns.query.udp(q, "127.0.0.1", port=rig.dns_port, timeout=2)
    assert answer.rcode() == dns.rcode.NOERROR
    assert rdatas(answer, "MX")


def test_outside_test_is_refused_and_nothing_leaves_loopback(rig: Rig) -> None:
    for name in ("example.com", "."):
        answer = ask(rig, name, "NS")
        assert answer.rcode() == dns.rcode.REFUSED, name
    assert rig.unbound is not None
    log = rig.unbound.log.read_text()
    targets = re.findall(r"sending to target: <[^>]*> (\S+)#\d+", log)
    assert targets, "unbound logged no upstream target; is verbosity still 3?"
    assert set(targets) == {"127.0.0.1"}


def policy_client(rig: Rig) -> httpx.Client:
    context = ssl.create_default_context(cafile=str(rig.ca_file))
    return httpx.Client(verify=context, trust_env=False, timeout=5, follow_redirects=False)


def fetch(client: httpx.Client, rig: Rig, host: str) -> httpx.Response:
    """The gateway's fetch: to 127.0.0.1 at the rig's port, with the policy host as SNI and Host."""
    return client.get(
        f"https://127.0.0.1:{rig.https_port}{POLICY_PATH}",
        headers={"Host": host},
        extensions={"sni_hostname": host},
    )


@pytest.mark.parametrize("row", WITH_POLICY, ids=ids(WITH_POLICY))
def test_policy_served_as_specified(rig: Rig, row: Domain) -> None:
    policy = row.policy
    assert policy is not None
    with policy_client(rig) as client:
        if policy.cert_names is not None:
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                fetch(client, rig, row.mta_sts_host)
            return
        response = fetch(client, rig, row.mta_sts_host)
    assert response.status_code == policy.status
    if policy.redirect_to is not None:
        assert response.headers["location"] == policy.redirect_to
    elif policy.status == 200:
        assert response.headers["content-type"] == policy.content_type
        assert response.text == policy.body


def test_secure_policy_text(rig: Rig) -> None:
    with policy_client(rig) as client:
        response = fetch(client, rig, "mta-sts.secure.test")
    assert response.text == (
        "version: STSv1\nmode: enforce\nmx: mx1.secure.test\nmx: mx2.secure.test\nmax_age: 86400\n"
    )


def test_wrongcert_presents_other_name(rig: Rig) -> None:
    # The certificate itself is from the test CA; only its name is wrong.
    context = ssl.create_default_context(cafile=str(rig.ca_file))
    context.check_hostname = False
    with httpx.Client(verify=context, trust_env=False, timeout=5) as client:
        response = fetch(client, rig, "mta-sts.wrongcert.test")
    assert response.status_code == 200
    assert rig.domain("wrongcert.test").policy is not None


def test_unknown_host_gets_404(rig: Rig) -> None:
    context = ssl.create_default_context(cafile=str(rig.ca_file))
    context.check_hostname = False
    with httpx.Client(verify=context, trust_env=False, timeout=5) as client:
        response = fetch(client, rig, "mta-sts.nosts.test")
    assert response.status_code == 404


def test_allowlist_file(rig: Rig) -> None:
    assert rig.allowlist_file is not None
    doc = tomllib.loads(rig.allowlist_file.read_text())
    entries = {entry["name"]: entry for entry in doc["domain"]}
    assert set(entries) == {row.name for row in ZONES} - {"unlisted.test"}
    assert entries["expired.test"]["expires"] == dt.date(2020, 1, 1)
    assert "expires" not in entries["secure.test"]
    for entry in entries.values():
        assert set(entry) >= {"name", "note", "owner", "source"}


def test_write_config(rig: Rig, tmp_path: Path) -> None:
    path = rig.write_config(
        tmp_path / "gateway.toml",
        policy={"require_tls_rpt": True},
        dns={"timeout": None},
    )
    doc = tomllib.loads(path.read_text())
    assert doc["dns"] == {"nameservers": [f"127.0.0.1:{rig.dns_port}"], "trust_ad": True}
    assert doc["mta_sts"] == {
        "https_port": rig.https_port,
        "ca_file": str(rig.ca_file),
        "allow_private_addresses": True,
    }
    assert doc["allowlist"] == {"paths": [str(rig.allowlist_file)]}
    assert doc["policy"] == {"minimum_transport": "mta-sts-enforce", "require_tls_rpt": True}
    data_dir = doc["store"]["data_dir"]
    other = tomllib.loads(rig.write_config(tmp_path / "other.toml").read_text())
    assert other["store"]["data_dir"] != data_dir, "each config gets a fresh store"
