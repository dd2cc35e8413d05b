"""gateway.posture.stsfetch.PolicyFetcher: the HTTPS rules of RFC 8461 §3.3.

Most tests inject ``httpx.MockTransport``, so nothing connects anywhere: public addresses such
as 8.8.8.8 appear only as values for the SSRF guard to look at. The WebPKI tests at the end run
a real TLS server on 127.0.0.1 with certificates from a throw-away CA (support.pki).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import httpx
import pytest

from gateway.config.settings import MtaStsSettings
from gateway.core.model import DnsAnswer, DnsStatus, PolicyStatus
from gateway.errors import PolicyFetchError
from gateway.posture.stsfetch import POLICY_PATH, PolicyFetcher, default_client, tls_context
from support.fakes import ChunkedBody, Handler, RecordingHandler, StubResolver
from support.httpsserver import HttpsServer
from support.pki import CertificateAuthority, Leaf

POLICY = "version: STSv1\nmode: enforce\nmx: mx.good.test\nmax_age: 86400\n"
HOST = "mta-sts.good.test"
PUBLIC_V4 = "8.8.8.8"  # a value for the guard only: MockTransport never connects
PUBLIC_V6 = "2001:4860:4860::8888"
TEXT = {"Content-Type": "text/plain"}


def ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, headers=TEXT, content=POLICY.encode())


@contextlib.asynccontextmanager
async def mock_fetcher(
    reply: Handler = ok,
    *,
    addresses: Sequence[str] | DnsAnswer[str] = (PUBLIC_V4,),
    host: str = HOST,
    **settings: object,
) -> AsyncIterator[tuple[PolicyFetcher, RecordingHandler]]:
    """A PolicyFetcher whose HTTP goes to ``reply`` and whose policy host has ``addresses``."""
    handler = RecordingHandler(reply)
    transport = httpx.MockTransport(handler)
    async with httpx.AsyncClient(transport=transport, follow_redirects=False) as client:
        resolver = StubResolver({host: addresses})
        fetcher = PolicyFetcher(resolver, MtaStsSettings(**settings), client)  # type: ignore[arg-type]
        yield fetcher, handler


async def fetch_error(fetcher: PolicyFetcher, domain: str = "good.test") -> PolicyFetchError:
    with pytest.raises(PolicyFetchError) as caught:
        await fetcher.fetch(domain)
    return caught.value


# --- what counts as a policy response ---------------------------------------------------------


def respond(status: int, headers: dict[str, str] | None = None, body: bytes = b"") -> Handler:
    return lambda request: httpx.Response(status, headers=headers or {}, content=body)


ACCEPTED = [
    ("text/plain", respond(200, TEXT, POLICY.encode())),
    ("charset", respond(200, {"Content-Type": "text/plain; charset=utf-8"}, POLICY.encode())),
    ("upper-case", respond(200, {"Content-Type": "Text/Plain"}, POLICY.encode())),
    ("exactly-64KiB", respond(200, TEXT, POLICY.encode().ljust(65536, b"\n"))),
]


@pytest.mark.parametrize("reply", [r for _, r in ACCEPTED], ids=[i for i, _ in ACCEPTED])
async def test_accepted_responses_give_the_text(reply: Handler) -> None:
    async with mock_fetcher(reply) as (fetcher, handler):
        text = await fetcher.fetch("good.test")
    assert text.startswith(POLICY)
    assert handler.calls == 1


REFUSED = [
    # (id, reply, temporary, fragment of the error)
    ("404", respond(404, TEXT, b"not here"), False, "HTTP 404"),
    ("410", respond(410, TEXT), False, "HTTP 410"),
    ("204", respond(204, TEXT), False, "HTTP 204"),  # only 200 counts
    ("500", respond(500, TEXT, b"oops"), True, "HTTP 500"),
    ("503", respond(503, TEXT), True, "HTTP 503"),
    ("429", respond(429, TEXT), True, "HTTP 429"),
    ("text/html", respond(200, {"Content-Type": "text/html"}, POLICY.encode()), False, "text/html"),
    ("no-type", respond(200, {}, POLICY.encode()), False, "missing"),
    ("text/plainx", respond(200, {"Content-Type": "text/plainx"}, b""), False, "media type"),
    ("64KiB+1", respond(200, TEXT, b"x" * 65537), False, "too big"),
]


@pytest.mark.parametrize(
    ("reply", "temporary", "fragment"),
    [r[1:] for r in REFUSED],
    ids=[r[0] for r in REFUSED],
)
async def test_refused_responses(reply: Handler, temporary: bool, fragment: str) -> None:
    async with mock_fetcher(reply) as (fetcher, handler):
        error = await fetch_error(fetcher)
    assert error.status is PolicyStatus.FETCH_ERROR
    assert error.temporary is temporary
    assert fragment in str(error)
    assert handler.calls == 1


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_redirects_are_never_followed(status: int) -> None:
    where = "https://mta-sts.elsewhere.test/.well-known/mta-sts.txt"
    async with mock_fetcher(respond(status, {"Location": where})) as (fetcher, handler):
        error = await fetch_error(fetcher)
    assert error.status is PolicyStatus.FETCH_ERROR
    assert error.temporary is False
    assert "redirect" in str(error)
    assert handler.calls == 1  # the Location was never asked for


async def test_oversize_body_without_content_length_is_cut_off_while_reading() -> None:
    body = ChunkedBody(total=10 * 1024 * 1024, chunk=8192)
    reply = respond_stream(body)
    async with mock_fetcher(reply) as (fetcher, _):
        error = await fetch_error(fetcher)
    assert error.status is PolicyStatus.FETCH_ERROR
    assert error.temporary is False
    assert "64 KiB" in str(error)
    assert body.sent <= 65536 + 8192  # stopped reading soon after the limit
    assert body.closed


@pytest.mark.parametrize(("total", "accepted"), [(70 * 1024, False), (65536, True)])
async def test_streamed_body_is_measured_not_trusted(total: int, accepted: bool) -> None:
    # A Content-Length that lies low must not let a bigger body through.
    body = ChunkedBody(total=total, chunk=1000)
    reply = respond_stream(body, {"Content-Length": "100"})
    async with mock_fetcher(reply) as (fetcher, _):
        if accepted:
            assert len(await fetcher.fetch("good.test")) == total
        else:
            assert (await fetch_error(fetcher)).status is PolicyStatus.FETCH_ERROR


def respond_stream(body: ChunkedBody, extra: dict[str, str] | None = None) -> Handler:
    def reply(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={**TEXT, **(extra or {})}, stream=body)

    return reply


async def test_a_body_that_cannot_be_decoded_is_a_fetch_error() -> None:
    reply = respond(200, {**TEXT, "Content-Encoding": "gzip"}, b"this is not gzip")
    async with mock_fetcher(reply) as (fetcher, _):
        error = await fetch_error(fetcher)
    assert error.status is PolicyStatus.FETCH_ERROR


async def test_compressed_policy_is_decoded() -> None:
    import gzip

    reply = respond(200, {**TEXT, "Content-Encoding": "gzip"}, gzip.compress(POLICY.encode()))
    async with mock_fetcher(reply) as (fetcher, _):
        assert await fetcher.fetch("good.test") == POLICY


# --- time -------------------------------------------------------------------------------------


async def test_a_slow_server_times_out_as_a_temporary_error() -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(2)
        return ok(request)

    loop = asyncio.get_running_loop()
    started = loop.time()
    async with mock_fetcher(slow, fetch_timeout=0.3) as (fetcher, _):
        error = await fetch_error(fetcher)
    assert loop.time() - started < 1.5
    assert error.status is PolicyStatus.FETCH_ERROR
    assert error.temporary is True
    assert "timed out" in str(error)


async def test_a_trickling_body_is_bounded_by_the_total_time() -> None:
    # every read is quick, but the whole fetch is not: the bound is on the total time
    body = ChunkedBody(total=60, chunk=1, pause=0.05)
    async with mock_fetcher(respond_stream(body), fetch_timeout=0.3) as (fetcher, _):
        error = await fetch_error(fetcher)
    assert error.temporary is True
    assert "timed out" in str(error)
    assert body.sent < 60


async def test_a_transport_timeout_is_temporary() -> None:
    def reply(request: httpx.Request) -> Exception:
        return httpx.ReadTimeout("read timed out", request=request)

    async with mock_fetcher(reply) as (fetcher, _):
        error = await fetch_error(fetcher)
    assert error.status is PolicyStatus.FETCH_ERROR
    assert error.temporary is True


# --- the request ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "port", "url", "host_header"),
    [
        (PUBLIC_V4, 443, f"https://{PUBLIC_V4}{POLICY_PATH}", HOST),
        (PUBLIC_V4, 8443, f"https://{PUBLIC_V4}:8443{POLICY_PATH}", f"{HOST}:8443"),
        (PUBLIC_V6, 443, f"https://[{PUBLIC_V6}]{POLICY_PATH}", HOST),
        (PUBLIC_V6, 8443, f"https://[{PUBLIC_V6}]:8443{POLICY_PATH}", f"{HOST}:8443"),
    ],
)
async def test_request_goes_to_the_address_with_the_policy_host_name(
    address: str, port: int, url: str, host_header: str
) -> None:
    async with mock_fetcher(addresses=[address], https_port=port) as (fetcher, handler):
        await fetcher.fetch("good.test")
    (request,) = handler.requests
    assert request.method == "GET"
    assert str(request.url) == url
    assert request.url.path == "/.well-known/mta-sts.txt"
    assert request.headers["Host"] == host_header
    assert request.extensions["sni_hostname"] == HOST  # TLS names the policy host, not the IP


async def test_the_policy_host_is_looked_up_under_mta_sts() -> None:
    async with mock_fetcher(host="mta-sts.xn--bcher-kva.test") as (fetcher, handler):
        await fetcher.fetch("xn--bcher-kva.test")
    assert fetcher._resolver.asked == ["mta-sts.xn--bcher-kva.test"]  # type: ignore[attr-defined]
    assert handler.requests[0].extensions["sni_hostname"] == "mta-sts.xn--bcher-kva.test"


# --- the SSRF guard ---------------------------------------------------------------------------

PRIVATE = [
    "127.0.0.1",
    "127.1.2.3",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata
    "100.64.0.1",  # shared address space
    "0.0.0.0",
    "192.0.2.1",  # documentation
    "224.0.0.1",  # multicast
    "::1",
    "fc00::1",
    "fd12:3456::1",
    "fe80::1",
    "::ffff:127.0.0.1",
    "::",
    "ff02::1",
]


@pytest.mark.parametrize("address", PRIVATE)
async def test_private_addresses_are_refused_without_a_request(address: str) -> None:
    async with mock_fetcher(addresses=[address]) as (fetcher, handler):
        error = await fetch_error(fetcher)
    assert error.status is PolicyStatus.FETCH_ERROR
    assert error.temporary is False
    assert "private" in str(error)
    assert handler.calls == 0


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "192.168.1.1", "::1", "fc00::1"])
async def test_private_addresses_are_allowed_when_the_operator_says_so(address: str) -> None:
    async with mock_fetcher(addresses=[address], allow_private_addresses=True) as (
        fetcher,
        handler,
    ):
        assert await fetcher.fetch("good.test") == POLICY
    assert handler.requests[0].url.host == address


@pytest.mark.parametrize("address", [PUBLIC_V4, PUBLIC_V6])
async def test_public_addresses_pass_the_guard(address: str) -> None:
    async with mock_fetcher(addresses=[address]) as (fetcher, handler):
        assert await fetcher.fetch("good.test") == POLICY
    assert handler.calls == 1


async def test_only_the_public_addresses_of_a_mixed_answer_are_contacted() -> None:
    addresses = ["10.0.0.1", PUBLIC_V4, "::1"]
    async with mock_fetcher(addresses=addresses) as (fetcher, handler):
        await fetcher.fetch("good.test")
    assert [r.url.host for r in handler.requests] == [PUBLIC_V4]


# --- DNS for the policy host ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "temporary"),
    [
        (DnsAnswer(DnsStatus.TEMPORARY, error="SERVFAIL"), True),
        (DnsAnswer(DnsStatus.NXDOMAIN), False),
        (DnsAnswer(DnsStatus.NODATA), False),
    ],
    ids=["temporary", "nxdomain", "nodata"],
)
async def test_policy_host_dns_failures(answer: DnsAnswer[str], temporary: bool) -> None:
    async with mock_fetcher(addresses=answer) as (fetcher, handler):
        error = await fetch_error(fetcher)
    assert error.status is PolicyStatus.FETCH_ERROR
    assert error.temporary is temporary
    assert HOST in str(error)
    assert handler.calls == 0


# --- several addresses ------------------------------------------------------------------------


def refuse_first(request: httpx.Request) -> httpx.Response | Exception:
    if request.url.host == PUBLIC_V4:
        return httpx.ConnectError("connection refused", request=request)
    return ok(request)


async def test_a_connect_error_falls_back_to_the_next_address() -> None:
    async with mock_fetcher(refuse_first, addresses=[PUBLIC_V4, PUBLIC_V6]) as (fetcher, handler):
        assert await fetcher.fetch("good.test") == POLICY
    assert [r.url.host for r in handler.requests] == [PUBLIC_V4, PUBLIC_V6]


async def test_every_address_failing_is_a_temporary_error() -> None:
    def refuse(request: httpx.Request) -> Exception:
        return httpx.ConnectError("connection refused", request=request)

    async with mock_fetcher(refuse, addresses=[PUBLIC_V4, PUBLIC_V6]) as (fetcher, handler):
        error = await fetch_error(fetcher)
    assert error.status is PolicyStatus.FETCH_ERROR
    assert error.temporary is True
    assert handler.calls == 2


async def test_a_definite_answer_is_not_asked_again_elsewhere() -> None:
    async with mock_fetcher(respond(404), addresses=[PUBLIC_V4, PUBLIC_V6]) as (fetcher, handler):
        error = await fetch_error(fetcher)
    assert error.temporary is False
    assert handler.calls == 1


async def test_fetches_are_bounded_in_number() -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.05)
        return ok(request)

    handler = RecordingHandler(slow)
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        resolver = StubResolver({f"mta-sts.d{i}.test": [PUBLIC_V4] for i in range(8)})
        fetcher = PolicyFetcher(resolver, MtaStsSettings(), client, max_concurrency=3)  # type: ignore[arg-type]
        await asyncio.gather(*(fetcher.fetch(f"d{i}.test") for i in range(8)))
    assert handler.calls == 8
    assert handler.max_in_flight == 3


# --- real TLS: the WebPKI rules ---------------------------------------------------------------


LeafMaker = Callable[[CertificateAuthority], Leaf]


class Pki:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.ca = CertificateAuthority("Gateway Test CA")
        self.ca_file = self.ca.write(folder / "ca.pem")
        self.count = 0

    def files(self, leaf_maker: LeafMaker) -> tuple[Path, Path]:
        self.count += 1
        leaf = leaf_maker(self.ca)
        return leaf.write(
            self.folder / f"leaf{self.count}.pem", self.folder / f"leaf{self.count}.key"
        )


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path)


@contextlib.asynccontextmanager
async def real_fetcher(
    pki: Pki, port: int, hosts: Sequence[str] = (HOST,)
) -> AsyncIterator[PolicyFetcher]:
    """The production client (default_client + tls_context) trusting only the test CA beyond
    the system roots; every policy host in ``hosts`` resolves to 127.0.0.1."""
    settings = MtaStsSettings(https_port=port, allow_private_addresses=True, fetch_timeout=5)
    async with default_client(tls_context(pki.ca_file), settings.fetch_timeout) as client:
        resolver = StubResolver({host: ["127.0.0.1"] for host in hosts})
        yield PolicyFetcher(resolver, settings, client)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def policy_site(
    pki: Pki, leaf_maker: LeafMaker, hosts: Sequence[str] = (HOST,)
) -> AsyncIterator[tuple[HttpsServer, PolicyFetcher]]:
    """An HTTPS server on 127.0.0.1 presenting the leaf certificate, serving POLICY."""
    cert, key = pki.files(leaf_maker)
    async with (
        HttpsServer(cert, key, body=POLICY.encode()) as server,
        real_fetcher(pki, server.port, hosts) as fetcher,
    ):
        yield server, fetcher


async def test_real_tls_with_a_good_certificate(pki: Pki) -> None:
    async with policy_site(pki, lambda ca: ca.issue([HOST])) as (server, fetcher):
        assert await fetcher.fetch("good.test") == POLICY
    (request,) = server.requests
    assert request.sni == HOST
    assert request.method == "GET"
    assert request.target == POLICY_PATH
    assert request.headers["host"] == f"{HOST}:{server.port}"
    assert "safeguarding-gateway" in request.headers["user-agent"]


async def test_real_tls_wildcard_certificate_for_the_whole_left_label(pki: Pki) -> None:
    async with policy_site(pki, lambda ca: ca.issue(["*.good.test"])) as (_, fetcher):
        assert await fetcher.fetch("good.test") == POLICY


BAD_CERTIFICATES: list[tuple[str, LeafMaker]] = [
    ("other-name", lambda ca: ca.issue(["mta-sts.other.test"])),
    ("common-name-only", lambda ca: ca.issue([], common_name=HOST)),
    ("untrusted-ca", lambda ca: CertificateAuthority("Somebody Else").issue([HOST])),
    ("expired", lambda ca: ca.issue_expired([HOST])),
    ("partial-wildcard", lambda ca: ca.issue(["mta-*.good.test"])),
    ("wildcard-too-high", lambda ca: ca.issue(["*.test"])),
    ("parent-domain", lambda ca: ca.issue(["good.test"])),
]


@pytest.mark.parametrize(
    "leaf_maker", [m for _, m in BAD_CERTIFICATES], ids=[i for i, _ in BAD_CERTIFICATES]
)
async def test_real_tls_bad_certificates_are_webpki_invalid(
    pki: Pki, leaf_maker: LeafMaker
) -> None:
    async with policy_site(pki, leaf_maker) as (server, fetcher):
        error = await fetch_error(fetcher)
    assert error.status is PolicyStatus.WEBPKI_INVALID
    assert error.temporary is False
    assert HOST in str(error)
    assert server.requests == []  # no policy was asked for over an unauthenticated channel


async def test_real_tls_nothing_listening_is_temporary(pki: Pki) -> None:
    cert, key = pki.files(lambda ca: ca.issue([HOST]))
    async with HttpsServer(cert, key) as server:
        port = server.port
    async with real_fetcher(pki, port) as fetcher:
        error = await fetch_error(fetcher)
    assert error.status is PolicyStatus.FETCH_ERROR
    assert error.temporary is True


async def test_real_tls_a_kept_alive_connection_is_not_reused_for_another_policy_host(
    pki: Pki,
) -> None:
    hosts = [HOST, "mta-sts.other.test"]
    # The certificate names mta-sts.good.test only.
    async with policy_site(pki, lambda ca: ca.issue([HOST]), hosts) as (server, fetcher):
        assert await fetcher.fetch("good.test") == POLICY
        # The second fetch must open its own connection, with its own SNI, and fail the
        # certificate check there: never ride the first connection.
        error = await fetch_error(fetcher, "other.test")
    assert error.status is PolicyStatus.WEBPKI_INVALID
    assert len(server.requests) == 1
