"""gateway.posture.dns.DnsResolver against a real DNS server on loopback (support.dnsserver)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.core.model import DnsAnswer, DnsStatus, MxRecord, TlsaRecord
from gateway.posture.dns import DnsResolver
from support.dnsserver import DnsServer, Query
from support.resolvers import resolver_for

SHA256 = "a" * 64
SHA512 = "b" * 128

ZONE: dict[tuple[str, str], list[str]] = {
    ("good.test", "MX"): ["20 mx2.good.test.", "10 MX1.Good.Test.", "10 mx0.good.test."],
    ("good.test", "A"): ["192.0.2.1"],
    ("_mta-sts.good.test", "TXT"): ['"v=STSv1; " "id=abc;"'],
    ("_25._tcp.mx1.good.test", "TLSA"): [f"3 1 1 {SHA256}", f"2 0 2 {SHA512}"],
    ("nullmx.test", "MX"): ["0 ."],
    ("v4.good.test", "A"): ["192.0.2.10", "192.0.2.11"],
    ("v6.good.test", "AAAA"): ["2001:db8::10"],
    ("dual.good.test", "A"): ["192.0.2.20"],
    ("dual.good.test", "AAAA"): ["2001:db8::20"],
    ("broken.good.test", "A"): ["192.0.2.30"],
    ("slow.test", "TXT"): ["v=STSv1; id=slow;"],
}


@pytest.fixture
async def server() -> AsyncIterator[DnsServer]:
    async with DnsServer(
        ZONE,
        servfail={"servfail.test", ("broken.good.test", "AAAA")},
        refused={"refused.test"},
        drop={"drop.test"},
    ) as running:
        yield running


# --- the four outcomes, kept apart -------------------------------------------------------------

OUTCOMES = [
    # (method, name, status)
    ("mx", "good.test", DnsStatus.FOUND),
    ("txt", "_mta-sts.good.test", DnsStatus.FOUND),
    ("tlsa", "_25._tcp.mx1.good.test", DnsStatus.FOUND),
    ("addresses", "good.test", DnsStatus.FOUND),
    ("mx", "absent.test", DnsStatus.NXDOMAIN),
    ("txt", "_mta-sts.absent.test", DnsStatus.NXDOMAIN),
    ("addresses", "absent.test", DnsStatus.NXDOMAIN),
    ("txt", "good.test", DnsStatus.NODATA),  # the name exists, with other types
    ("mx", "nothere.good.test", DnsStatus.NXDOMAIN),
    ("mx", "mx1.good.test", DnsStatus.NODATA),  # only names below it exist
    ("tlsa", "_tcp.mx1.good.test", DnsStatus.NODATA),  # empty non-terminal (RFC 8020)
    ("addresses", "nullmx.test", DnsStatus.NODATA),
    ("mx", "servfail.test", DnsStatus.TEMPORARY),
    ("txt", "servfail.test", DnsStatus.TEMPORARY),
    ("addresses", "servfail.test", DnsStatus.TEMPORARY),
    ("mx", "refused.test", DnsStatus.TEMPORARY),
    ("tlsa", "refused.test", DnsStatus.TEMPORARY),
    ("txt", "drop.test", DnsStatus.TEMPORARY),
]


@pytest.mark.parametrize(("method", "name", "status"), OUTCOMES)
async def test_outcomes_are_kept_apart(
    server: DnsServer, method: str, name: str, status: DnsStatus
) -> None:
    resolver = resolver_for(server, timeout=0.5)
    answer: DnsAnswer[object] = await getattr(resolver, method)(name)
    assert answer.status is status
    assert answer.negative is (status in (DnsStatus.NXDOMAIN, DnsStatus.NODATA))
    assert bool(answer.records) is (status is DnsStatus.FOUND)
    if status is DnsStatus.TEMPORARY:
        assert answer.error  # something for the log to say
        assert answer.authenticated is False


@pytest.mark.parametrize(
    ("name", "fragment"),
    [("servfail.test", "SERVFAIL"), ("refused.test", "REFUSED"), ("drop.test", "timed out")],
)
async def test_temporary_errors_say_what_happened(
    server: DnsServer, name: str, fragment: str
) -> None:
    answer = await resolver_for(server, timeout=0.5).txt(name)
    assert answer.status is DnsStatus.TEMPORARY
    assert fragment in answer.error


async def test_a_dropped_query_times_out_within_the_configured_timeout(server: DnsServer) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    answer = await resolver_for(server, timeout=0.5).mx("drop.test")
    assert answer.status is DnsStatus.TEMPORARY
    assert loop.time() - started < 1.5


# --- record parsing ---------------------------------------------------------------------------


async def test_mx_is_sorted_by_preference_and_canonical(server: DnsServer) -> None:
    answer = await resolver_for(server).mx("good.test")
    assert answer.records == (
        MxRecord(10, "mx0.good.test"),
        MxRecord(10, "mx1.good.test"),  # lower case, no trailing dot
        MxRecord(20, "mx2.good.test"),
    )


async def test_null_mx_gives_an_empty_host(server: DnsServer) -> None:
    answer = await resolver_for(server).mx("nullmx.test")
    assert answer.status is DnsStatus.FOUND
    assert answer.records == (MxRecord(0, ""),)


@pytest.mark.parametrize(
    ("rdatas", "expected"),
    [
        (['"v=STSv1; " "id=abc;"'], ["v=STSv1; id=abc;"]),
        (['"v=STS" "v1;" " id=" "1;"'], ["v=STSv1; id=1;"]),
        (['"v=STSv1;" "id=1;"'], ["v=STSv1;id=1;"]),  # no separator is added
        (['"a" ""  "b"'], ["ab"]),
        (
            ["v=STSv1; id=one;", "v=TLSRPTv1; rua=mailto:a@b.test"],
            ["v=STSv1; id=one;", "v=TLSRPTv1; rua=mailto:a@b.test"],
        ),
        (['"caf\\195\\169"'], ["café"]),  # UTF-8 bytes on the wire
    ],
    ids=["two-strings", "four-strings", "no-space", "empty-string", "two-records", "utf-8"],
)
async def test_txt_strings_are_joined_without_separator(
    dns_server: DnsServer, rdatas: list[str], expected: list[str]
) -> None:
    dns_server.records[("t.test", "TXT")] = rdatas
    answer = await resolver_for(dns_server).txt("t.test")
    assert answer.status is DnsStatus.FOUND
    assert sorted(answer.records) == sorted(expected)


async def test_txt_with_bytes_that_are_not_utf8_does_not_fail_the_lookup(
    dns_server: DnsServer,
) -> None:
    dns_server.records[("t.test", "TXT")] = ['"v=STSv1; id=\\255;"']
    answer = await resolver_for(dns_server).txt("t.test")
    assert answer.status is DnsStatus.FOUND
    assert answer.records == ("v=STSv1; id=\ufffd;",)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    strings=st.lists(
        st.binary(min_size=0, max_size=60).filter(lambda b: b.isascii()), min_size=1, max_size=6
    )
)
async def test_any_txt_strings_come_back_joined(strings: list[bytes]) -> None:
    rdata = dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, dns.rdatatype.TXT, strings)
    async with DnsServer({("p.test", "TXT"): [rdata.to_text()]}) as server:
        answer = await resolver_for(server).txt("p.test")
    assert answer.records == (b"".join(strings).decode("ascii"),)


async def test_tlsa_records_are_parsed(server: DnsServer) -> None:
    answer = await resolver_for(server).tlsa("_25._tcp.mx1.good.test")
    assert sorted(answer.records, key=lambda r: r.usage) == [
        TlsaRecord(2, 0, 2, bytes.fromhex(SHA512)),
        TlsaRecord(3, 1, 1, bytes.fromhex(SHA256)),
    ]


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_tlsa_with_a_digest_of_the_wrong_length_is_still_an_answer(
    dns_server: DnsServer, transport: str
) -> None:
    dns_server.records[("_25._tcp.mx.test", "TLSA")] = [
        "\\# 5 030101abcd",  # 3 1 1 with a 2-byte "SHA-256"
        f"3 1 1 {SHA256}",
    ]
    if transport == "tcp":
        dns_server.truncate.add("_25._tcp.mx.test")
    answer = await resolver_for(dns_server, timeout=0.5).tlsa("_25._tcp.mx.test")
    assert answer.status is DnsStatus.FOUND
    assert sorted(answer.records, key=lambda r: len(r.data)) == [
        TlsaRecord(3, 1, 1, bytes.fromhex("abcd")),
        TlsaRecord(3, 1, 1, bytes.fromhex(SHA256)),
    ]


async def test_a_large_answer_is_fetched_over_tcp(dns_server: DnsServer) -> None:
    big = [f"record-{i:02d}-" + "x" * 200 for i in range(40)]  # ~8 KB: more than 1232 bytes
    dns_server.records[("big.test", "TXT")] = big
    answer = await resolver_for(dns_server).txt("big.test")
    assert answer.status is DnsStatus.FOUND
    assert sorted(answer.records) == big
    assert [q.transport for q in dns_server.log] == ["udp", "tcp"]


async def test_a_truncated_udp_answer_is_retried_over_tcp(server: DnsServer) -> None:
    server.truncate.add("good.test")
    answer = await resolver_for(server).mx("good.test")
    assert len(answer.records) == 3
    assert [q.transport for q in server.log] == ["udp", "tcp"]


# --- DNSSEC: the AD bit -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("trust_ad", "secure", "authenticated"),
    [(True, True, True), (True, False, False), (False, True, False), (False, False, False)],
)
@pytest.mark.parametrize(
    ("method", "name"),
    [
        ("mx", "good.test"),  # found
        ("txt", "good.test"),  # NODATA
        ("txt", "absent.good.test"),  # NXDOMAIN
    ],
)
async def test_ad_bit_counts_only_from_a_trusted_resolver(
    server: DnsServer, trust_ad: bool, secure: bool, authenticated: bool, method: str, name: str
) -> None:
    if secure:
        server.secure.add(name)
    answer = await getattr(resolver_for(server, trust_ad=trust_ad), method)(name)
    assert answer.status is not DnsStatus.TEMPORARY
    assert answer.authenticated is authenticated


async def test_resolver_reports_whether_it_is_trusted(server: DnsServer) -> None:
    assert resolver_for(server, trust_ad=True).trusted is True
    assert resolver_for(server, trust_ad=False).trusted is False


# --- addresses(): A and AAAA merged -----------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "secure", "status", "records", "authenticated"),
    [
        ("v4.good.test", {"v4.good.test"}, DnsStatus.FOUND, {"192.0.2.10", "192.0.2.11"}, True),
        ("v6.good.test", {"v6.good.test"}, DnsStatus.FOUND, {"2001:db8::10"}, True),
        (
            "dual.good.test",
            {"dual.good.test"},
            DnsStatus.FOUND,
            {"192.0.2.20", "2001:db8::20"},
            True,
        ),
        # secure only when both families were: here AAAA (NODATA) is not authenticated
        (
            "v4.good.test",
            {("v4.good.test", "A")},
            DnsStatus.FOUND,
            {"192.0.2.10", "192.0.2.11"},
            False,
        ),
        (
            "dual.good.test",
            {("dual.good.test", "AAAA")},
            DnsStatus.FOUND,
            {"192.0.2.20", "2001:db8::20"},
            False,
        ),
        ("dual.good.test", set(), DnsStatus.FOUND, {"192.0.2.20", "2001:db8::20"}, False),
        # one family failing makes the whole answer temporary and never secure
        ("broken.good.test", {"broken.good.test"}, DnsStatus.TEMPORARY, {"192.0.2.30"}, False),
        ("nullmx.test", {"nullmx.test"}, DnsStatus.NODATA, set(), True),
        ("absent.good.test", set(), DnsStatus.NXDOMAIN, set(), False),
    ],
)
async def test_addresses_merge_a_and_aaaa(
    server: DnsServer,
    name: str,
    secure: set[str | tuple[str, str]],
    status: DnsStatus,
    records: set[str],
    authenticated: bool,
) -> None:
    server.secure |= secure
    answer = await resolver_for(server).addresses(name)
    assert answer.status is status
    assert set(answer.records) == records
    assert answer.authenticated is authenticated
    assert server.count(name, "A") == 1
    assert server.count(name, "AAAA") == 1


# --- names are absolute -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("asked", "seen"),
    [
        ("good.test", "good.test."),
        ("good.test.", "good.test."),
        ("localhost", "localhost."),  # a single label is never completed with a search domain
        ("_mta-sts.good.test", "_mta-sts.good.test."),
    ],
)
async def test_names_are_absolute(server: DnsServer, asked: str, seen: str) -> None:
    await resolver_for(server).txt(asked)
    assert server.log == [Query(seen, "TXT", "udp")]


async def test_a_name_that_cannot_be_a_name_sends_no_query(server: DnsServer) -> None:
    answer = await resolver_for(server).txt("a..b.test")
    assert answer.status is DnsStatus.NXDOMAIN
    assert server.total == 0


# --- single flight, counting, concurrency -----------------------------------------------------


async def test_concurrent_identical_lookups_share_one_query(server: DnsServer) -> None:
    server.delay = 0.2
    resolver = resolver_for(server)
    answers = await asyncio.gather(*(resolver.txt("slow.test") for _ in range(20)))
    assert server.count("slow.test", "TXT") == 1
    assert resolver.queries == 1
    assert {a.records for a in answers} == {("v=STSv1; id=slow;",)}


async def test_single_flight_ignores_the_case_of_the_name(server: DnsServer) -> None:
    server.delay = 0.2
    resolver = resolver_for(server)
    await asyncio.gather(*(resolver.txt(n) for n in ["slow.test", "SLOW.test", "Slow.Test"]))
    assert server.count("slow.test", "TXT") == 1


async def test_single_flight_ignores_a_trailing_dot(server: DnsServer) -> None:
    server.delay = 0.2
    resolver = resolver_for(server)
    await asyncio.gather(resolver.txt("slow.test"), resolver.txt("slow.test."))
    assert server.count("slow.test", "TXT") == 1


async def test_single_flight_does_not_cache_after_the_answer(server: DnsServer) -> None:
    resolver = resolver_for(server)
    await resolver.txt("slow.test")
    await resolver.txt("slow.test")
    assert server.count("slow.test", "TXT") == 2
    assert resolver.queries == 2


async def test_different_types_are_not_coalesced(server: DnsServer) -> None:
    server.delay = 0.1
    resolver = resolver_for(server)
    await asyncio.gather(resolver.mx("good.test"), resolver.txt("good.test"))
    assert server.count("good.test", "MX") == 1
    assert server.count("good.test", "TXT") == 1
    assert resolver.queries == 2


async def test_a_caller_giving_up_does_not_cancel_the_shared_lookup(server: DnsServer) -> None:
    server.delay = 0.2
    resolver = resolver_for(server)
    impatient = asyncio.create_task(resolver.txt("slow.test"))
    patient = asyncio.create_task(resolver.txt("slow.test"))
    await asyncio.sleep(0.05)
    impatient.cancel()
    answer = await patient
    assert answer.records == ("v=STSv1; id=slow;",)
    assert impatient.cancelled()
    assert server.count("slow.test", "TXT") == 1


async def test_queries_counts_what_went_out(server: DnsServer) -> None:
    resolver = resolver_for(server)
    assert resolver.queries == 0
    await resolver.mx("good.test")
    await resolver.txt("_mta-sts.good.test")
    await resolver.addresses("dual.good.test")  # A and AAAA
    assert resolver.queries == 4
    assert server.total == 4


async def test_concurrency_is_bounded(server: DnsServer) -> None:
    server.delay = 0.1
    resolver: DnsResolver = resolver_for(server, max_concurrency=2)
    await asyncio.gather(*(resolver.txt(f"n{i}.test") for i in range(6)))
    assert server.total == 6
    assert server.max_in_flight == 2


async def test_ipv6_nameserver_on_loopback() -> None:
    async with DnsServer({("v6ns.test", "TXT"): ["hello"]}, host="::1") as server:
        assert server.nameserver.startswith("[::1]:")
        answer = await resolver_for(server).txt("v6ns.test")
    assert answer.records == ("hello",)


async def test_the_answer_cache_serves_repeats_and_keeps_the_ad_bit(server: DnsServer) -> None:
    server.secure.add("good.test")
    resolver = resolver_for(server, cache_size=100)
    first = await resolver.mx("good.test")
    second = await resolver.mx("good.test")
    assert server.count("good.test", "MX") == 1
    assert second == first
    assert second.authenticated


async def test_the_answer_cache_never_keeps_a_temporary_failure(server: DnsServer) -> None:
    resolver = resolver_for(server, cache_size=100, timeout=0.5)
    server.servfail.add("good.test")
    assert (await resolver.mx("good.test")).status is DnsStatus.TEMPORARY
    server.servfail.discard("good.test")
    assert (await resolver.mx("good.test")).status is DnsStatus.FOUND


# --- how long an answer may be used --------------------------------------------------------

TTLS = [
    # (method, name, the TTL the answer may be used for at most), from a server whose records
    # have a TTL of 600 and whose SOA has a MINIMUM of 300
    ("mx", "good.test", 600),  # the RRset's TTL
    ("addresses", "dual.good.test", 600),  # A and AAAA: the shorter of the two
    ("mx", "absent.test", 300),  # NXDOMAIN: min(SOA TTL, SOA MINIMUM) (RFC 2308 §5)
    ("txt", "good.test", 300),  # NODATA: the same
]


@pytest.mark.parametrize(("method", "name", "ttl"), TTLS)
async def test_an_answer_says_how_long_it_may_be_used(method: str, name: str, ttl: int) -> None:
    async with DnsServer(ZONE, ttl=600) as running:
        answer: DnsAnswer[object] = await getattr(resolver_for(running), method)(name)
    assert answer.ttl is not None
    assert ttl - 5 < answer.ttl <= ttl


async def test_an_answer_from_the_cache_has_aged() -> None:
    async with DnsServer(ZONE, ttl=120) as running:
        resolver = resolver_for(running, cache_size=100)
        first = await resolver.mx("good.test")
        second = await resolver.mx("good.test")
    assert running.count("good.test", "MX") == 1
    assert first.ttl is not None
    assert second.ttl is not None
    assert second.ttl <= first.ttl


async def test_a_temporary_failure_has_no_ttl(server: DnsServer) -> None:
    answer = await resolver_for(server, timeout=0.5).mx("servfail.test")
    assert answer.status is DnsStatus.TEMPORARY
    assert answer.ttl is None
