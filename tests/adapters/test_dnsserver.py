"""The test DNS server itself (support.dnsserver), asked with plain dnspython queries, so the
other adapter tests can trust what it says."""

from __future__ import annotations

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from support.dnsserver import DnsServer, Query

RECORDS = {
    ("a.b.zone.test", "TXT"): ["one string, spaces and all", '"two" "strings"'],
    ("big.zone.test", "TXT"): ["x" * 250] * 1 + [f"{i:03d}" + "y" * 240 for i in range(20)],
}


async def ask(
    server: DnsServer, name: str, rdtype: str, *, tcp: bool = False
) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, use_edns=0, payload=1232)
    send = dns.asyncquery.tcp if tcp else dns.asyncquery.udp
    return await send(query, server.host, port=server.port, timeout=2)


@pytest.mark.parametrize(
    ("name", "rcode", "answers"),
    [
        ("a.b.zone.test", dns.rcode.NOERROR, 1),
        ("b.zone.test", dns.rcode.NOERROR, 0),  # empty non-terminal: NODATA
        ("zone.test", dns.rcode.NOERROR, 0),
        ("c.zone.test", dns.rcode.NXDOMAIN, 0),
        ("A.B.ZONE.TEST.", dns.rcode.NOERROR, 1),  # names are case-insensitive
    ],
)
async def test_nxdomain_nodata_and_found(name: str, rcode: int, answers: int) -> None:
    async with DnsServer(RECORDS) as server:
        response = await ask(server, name, "TXT")
    assert response.rcode() == rcode
    assert len(response.answer) == answers
    if not answers:
        assert response.authority[0].rdtype == dns.rdatatype.SOA


async def test_txt_without_quotes_is_one_string() -> None:
    async with DnsServer(RECORDS) as server:
        response = await ask(server, "a.b.zone.test", "TXT")
    strings = sorted(tuple(rdata.strings) for rdata in response.answer[0])
    assert strings == [(b"one string, spaces and all",), (b"two", b"strings")]


@pytest.mark.parametrize(
    ("settings", "rcode", "ad"),
    [
        ({"secure": {"a.b.zone.test"}}, dns.rcode.NOERROR, True),
        ({"secure": {("a.b.zone.test", "TXT")}}, dns.rcode.NOERROR, True),
        ({"secure": {("a.b.zone.test", "A")}}, dns.rcode.NOERROR, False),
        ({}, dns.rcode.NOERROR, False),
        ({"secure": {"a.b.zone.test"}, "servfail": {"a.b.zone.test"}}, dns.rcode.SERVFAIL, False),
        ({"refused": {("a.b.zone.test", "TXT")}}, dns.rcode.REFUSED, False),
    ],
)
async def test_flags_and_failures(settings: dict[str, set[object]], rcode: int, ad: bool) -> None:
    async with DnsServer(RECORDS, **settings) as server:  # type: ignore[arg-type]
        response = await ask(server, "a.b.zone.test", "TXT")
    assert response.rcode() == rcode
    assert bool(response.flags & dns.flags.AD) is ad


async def test_big_answers_are_truncated_over_udp_and_whole_over_tcp() -> None:
    async with DnsServer(RECORDS) as server:
        udp = await ask(server, "big.zone.test", "TXT")
        tcp = await ask(server, "big.zone.test", "TXT", tcp=True)
        assert server.log == [
            Query("big.zone.test.", "TXT", "udp"),
            Query("big.zone.test.", "TXT", "tcp"),
        ]
    assert udp.flags & dns.flags.TC
    assert not udp.answer
    assert len(tcp.answer[0]) == 21


async def test_a_broken_table_fails_the_test_instead_of_going_quiet() -> None:
    server = DnsServer({("bad.test", "MX"): ["not an mx"]})
    await server.start()
    try:
        with pytest.raises(dns.exception.Timeout):
            await dns.asyncquery.udp(
                dns.message.make_query("bad.test", "MX"), server.host, 0.3, port=server.port
            )
    finally:
        await server.stop()
    assert len(server.errors) == 1
    with pytest.raises(RuntimeError, match="test DNS server failed"):
        await server.__aexit__(None, None, None)
