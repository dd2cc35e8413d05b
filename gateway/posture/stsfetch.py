"""Fetch an MTA-STS policy over HTTPS, by the rules of RFC 8461 §3.3.

The policy host ``mta-sts.<domain>`` is resolved through the gateway's own resolver (one place
for DNS) and reached by address, with SNI and Host set to the policy host, so the certificate is
still checked against that name. Then: HTTPS only, TLS 1.2 or newer, no redirects, only 200,
media type ``text/plain``, at most 64 KiB counted while reading, one bounded total time.
Hosts that resolve to loopback, private or link-local addresses are refused (a policy host is
chosen by whoever controls the recipient's DNS: without this guard the gateway could be made to
probe the organisation's own network) unless the operator allows them.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from collections.abc import Awaitable
from pathlib import Path

import httpx

from gateway.config.settings import MtaStsSettings
from gateway.core.model import DnsAnswer, DnsStatus, PolicyStatus
from gateway.core.mtasts import POLICY_MAX_BYTES
from gateway.errors import PolicyFetchError
from gateway.posture.dns import Resolver

POLICY_PATH = "/.well-known/mta-sts.txt"
USER_AGENT = "safeguarding-gateway (MTA-STS policy fetch)"


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """The system's roots plus the operator's extra ones; names checked only against
    subjectAltName (RFC 8461 §3.3 via RFC 6125), with wildcards only as a whole left label."""
    context = ssl.create_default_context()
    if ca_file is not None:
        context.load_verify_locations(cafile=str(ca_file))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.hostname_checks_common_name = False
    return context


def default_client(context: ssl.SSLContext, timeout: float) -> httpx.AsyncClient:
    # trust_env=False: proxy variables in the environment must never reroute policy fetches.
    # No keep-alive: connections are pooled by address, and a connection opened with the SNI
    # and certificate of one policy host must never carry the request for another that shares
    # its address. Policies are cached for days, so the extra handshakes cost nothing.
    # identity encoding: no decompression bombs, and the 64 KiB cap counts what was sent.
    return httpx.AsyncClient(
        verify=context,
        follow_redirects=False,
        trust_env=False,
        timeout=httpx.Timeout(timeout),
        limits=httpx.Limits(max_keepalive_connections=0),
        headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
    )


class PolicyFetcher:
    def __init__(
        self,
        resolver: Resolver,
        settings: MtaStsSettings,
        client: httpx.AsyncClient,
        *,
        max_concurrency: int = 16,
    ) -> None:
        self._resolver = resolver
        self._settings = settings
        self._client = client
        self._limit = asyncio.Semaphore(max_concurrency)

    def addresses(self, domain: str) -> Awaitable[DnsAnswer[str]]:
        """Look up the addresses of ``domain``'s policy host, for ``fetch`` to use."""
        return self._resolver.addresses(_policy_host(domain))

    async def fetch(self, domain: str, addresses: Awaitable[DnsAnswer[str]] | None = None) -> str:
        """Return the policy text for ``domain``; raise PolicyFetchError. ``addresses``: the
        policy host's lookup, already under way (``addresses``); None: looked up here."""
        host = _policy_host(domain)
        async with self._limit:
            try:
                async with asyncio.timeout(self._settings.fetch_timeout):
                    lookup = addresses if addresses is not None else self._resolver.addresses(host)
                    answer = await lookup
                    return await self._fetch_host(host, answer)
            except TimeoutError as exc:
                raise PolicyFetchError(
                    PolicyStatus.FETCH_ERROR, "policy fetch timed out", temporary=True
                ) from exc

    async def _fetch_host(self, host: str, answer: DnsAnswer[str]) -> str:
        addresses = self._allowed_addresses(host, answer)
        last: PolicyFetchError | None = None
        for address in addresses:
            try:
                return await self._get(host, address)
            except PolicyFetchError as exc:
                if not exc.temporary:
                    raise
                last = exc  # could not connect: try the next address
        assert last is not None
        raise last

    def _allowed_addresses(self, host: str, answer: DnsAnswer[str]) -> list[str]:
        if answer.status is DnsStatus.TEMPORARY:
            raise PolicyFetchError(
                PolicyStatus.FETCH_ERROR,
                f"cannot resolve {host}: {answer.error}",
                temporary=True,
            )
        if not answer.records:
            raise PolicyFetchError(PolicyStatus.FETCH_ERROR, f"{host} has no address")
        allowed = [a for a in answer.records if self._address_allowed(a)]
        if not allowed:
            raise PolicyFetchError(
                PolicyStatus.FETCH_ERROR,
                f"{host} resolves only to private or loopback addresses",
            )
        return allowed

    def _address_allowed(self, address: str) -> bool:
        if self._settings.allow_private_addresses:
            return True
        ip = ipaddress.ip_address(address)
        return ip.is_global and not ip.is_multicast

    async def _get(self, host: str, address: str) -> str:
        literal = f"[{address}]" if ":" in address else address
        port = self._settings.https_port
        url = f"https://{literal}:{port}{POLICY_PATH}"
        headers = {"Host": host if port == 443 else f"{host}:{port}"}
        try:
            async with self._client.stream(
                "GET", url, headers=headers, extensions={"sni_hostname": host}
            ) as response:
                _check_response(response)
                return await _read_limited(response)
        except httpx.TransportError as exc:
            raise _translate(exc, host) from exc
        except httpx.HTTPError as exc:  # e.g. a body that does not decode as it claims
            raise PolicyFetchError(
                PolicyStatus.FETCH_ERROR, f"unreadable policy response: {exc}"
            ) from exc


def _policy_host(domain: str) -> str:
    return f"mta-sts.{domain}"  # RFC 8461 §3.3


def _check_response(response: httpx.Response) -> None:
    status = response.status_code
    if 300 <= status < 400:
        # §3.3: "HTTP 3xx redirects MUST NOT be followed".
        where = response.headers.get("location", "")
        raise PolicyFetchError(PolicyStatus.FETCH_ERROR, f"redirect ({status}) to {where!r}")
    if status != 200:
        temporary = status >= 500 or status == 429
        raise PolicyFetchError(PolicyStatus.FETCH_ERROR, f"HTTP {status}", temporary=temporary)
    media_type = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "text/plain":
        raise PolicyFetchError(
            PolicyStatus.FETCH_ERROR, f"media type {media_type or 'missing'}, not text/plain"
        )
    length = response.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > POLICY_MAX_BYTES:
        raise PolicyFetchError(PolicyStatus.FETCH_ERROR, f"policy of {length} bytes is too big")


async def _read_limited(response: httpx.Response) -> str:
    # Counted while reading: a missing or lying Content-Length must not let a host stream
    # an endless body into memory.
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body.extend(chunk)
        if len(body) > POLICY_MAX_BYTES:
            raise PolicyFetchError(PolicyStatus.FETCH_ERROR, "policy larger than 64 KiB")
    return body.decode("utf-8", "replace")


def _translate(exc: httpx.TransportError, host: str) -> PolicyFetchError:
    """httpx's exceptions become ours here and nowhere else."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            detail = cause.verify_message or str(cause)
            return PolicyFetchError(
                PolicyStatus.WEBPKI_INVALID, f"certificate for {host} not valid: {detail}"
            )
        cause = cause.__cause__ or cause.__context__
    if "CERTIFICATE_VERIFY_FAILED" in str(exc):
        return PolicyFetchError(PolicyStatus.WEBPKI_INVALID, f"certificate for {host} not valid")
    if isinstance(exc, httpx.TimeoutException):
        return PolicyFetchError(PolicyStatus.FETCH_ERROR, "policy host timed out", temporary=True)
    detail = str(exc) or type(exc).__name__
    return PolicyFetchError(
        PolicyStatus.FETCH_ERROR, f"cannot fetch policy: {detail}", temporary=True
    )
