"""DNS lookups through the one configured resolver (dnspython's async resolver).

Every lookup returns a ``DnsAnswer`` and never raises: found, an authoritative no (NXDOMAIN or
NODATA), or temporary (SERVFAIL, REFUSED, timeout, network error), plus whether the answer was
DNSSEC-authenticated. The AD bit counts only when the operator trusts the resolver
([dns] trust_ad), normally a validating resolver on loopback (RFC 6698 §4.1, RFC 7672 §2.1).

Names are always absolute: no search list is ever applied. Identical lookups in flight at the
same time share one query (single flight), and a semaphore bounds how many run at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import dns.asyncresolver
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.rdtypes.tlsabase
import dns.resolver
from dns.rdatatype import RdataType

from gateway.config.settings import DnsSettings
from gateway.core.addresses import AddressError, normalise_domain
from gateway.core.model import DnsAnswer, DnsStatus, MxRecord, TlsaRecord

T = TypeVar("T")

# RFC 7671 §5: a TLSA record whose digest has the wrong length is unusable and is ignored; the
# rest of the RRset still counts. dnspython refuses to parse such a record, and with it the
# whole response, which would turn a publisher's typo into an endless temporary failure.
# ``core.dane.usable`` checks the length instead.
dns.rdtypes.tlsabase.TLSABase._cert_length_by_mtype = {}


class Resolver(Protocol):
    """What the rest of the gateway needs from DNS. Tests may pass any object that fits."""

    @property
    def trusted(self) -> bool: ...

    async def mx(self, name: str) -> DnsAnswer[MxRecord]: ...

    async def txt(self, name: str) -> DnsAnswer[str]: ...

    async def addresses(self, name: str) -> DnsAnswer[str]: ...

    async def tlsa(self, name: str) -> DnsAnswer[TlsaRecord]: ...


class DnsResolver:
    def __init__(self, settings: DnsSettings) -> None:
        if settings.nameservers:
            resolver = dns.asyncresolver.Resolver(configure=False)
            servers: list[str | dns.nameserver.Nameserver] = []
            for item in settings.nameservers:
                servers.append(dns.nameserver.Do53Nameserver(item.host, item.port))
            resolver.nameservers = servers
        else:
            resolver = dns.asyncresolver.Resolver()  # the system's /etc/resolv.conf
        resolver.search = []
        resolver.use_search_by_default = False
        resolver.timeout = settings.timeout
        resolver.lifetime = settings.timeout
        # RFC 6840 §5.7: setting AD in the query asks a validating resolver to report it.
        resolver.flags = dns.flags.RD | dns.flags.AD
        resolver.use_edns(0, 0, 1232)
        if settings.cache_size:
            # Answers kept for their TTL: a flagged message to a domain seen a moment ago
            # costs no queries. Temporary failures are never cached.
            resolver.cache = dns.resolver.LRUCache(settings.cache_size)
        self._resolver = resolver
        self._trusted = settings.trust_ad
        self._limit = asyncio.Semaphore(settings.max_concurrency)
        self._inflight: dict[tuple[str, RdataType], asyncio.Future[Any]] = {}
        self.queries = 0  # how many queries actually went out; single flight keeps it low

    @property
    def trusted(self) -> bool:
        return self._trusted

    async def mx(self, name: str) -> DnsAnswer[MxRecord]:
        return await self._single_flight(name, dns.rdatatype.MX, _mx_records)

    async def txt(self, name: str) -> DnsAnswer[str]:
        return await self._single_flight(name, dns.rdatatype.TXT, _txt_records)

    async def tlsa(self, name: str) -> DnsAnswer[TlsaRecord]:
        return await self._single_flight(name, dns.rdatatype.TLSA, _tlsa_records)

    async def addresses(self, name: str) -> DnsAnswer[str]:
        v4, v6 = await asyncio.gather(
            self._single_flight(name, dns.rdatatype.A, _address_records),
            self._single_flight(name, dns.rdatatype.AAAA, _address_records),
        )
        return merge_address_answers(v4, v6)

    async def _single_flight(
        self, name: str, rdtype: RdataType, convert: Callable[[Any], tuple[T, ...]]
    ) -> DnsAnswer[T]:
        key = (name.lower().removesuffix("."), rdtype)
        future = self._inflight.get(key)
        if future is None:
            future = asyncio.ensure_future(self._query(name, rdtype, convert))
            self._inflight[key] = future
            future.add_done_callback(lambda _: self._inflight.pop(key, None))
        # shield: one caller giving up must not cancel the lookup the others wait for.
        return await asyncio.shield(future)

    async def _query(
        self, name: str, rdtype: RdataType, convert: Callable[[Any], tuple[T, ...]]
    ) -> DnsAnswer[T]:
        try:
            qname = dns.name.from_text(name)  # absolute, relative to the root
        except dns.exception.DNSException as exc:
            return DnsAnswer(DnsStatus.NXDOMAIN, error=f"bad name: {exc}")
        async with self._limit:
            self.queries += 1
            return await self._resolve(qname, rdtype, convert)

    async def _resolve(
        self, qname: dns.name.Name, rdtype: RdataType, convert: Callable[[Any], tuple[T, ...]]
    ) -> DnsAnswer[T]:
        try:
            answer = await self._resolver.resolve(qname, rdtype, search=False)
        except dns.resolver.NXDOMAIN as exc:
            response = _nx_response(exc)
            return DnsAnswer(
                DnsStatus.NXDOMAIN, authenticated=self._ad(response), ttl=_negative_ttl(response)
            )
        except dns.resolver.NoAnswer as exc:
            response = exc.kwargs.get("response")
            return DnsAnswer(
                DnsStatus.NODATA, authenticated=self._ad(response), ttl=_negative_ttl(response)
            )
        except dns.resolver.NoNameservers as exc:
            return DnsAnswer(DnsStatus.TEMPORARY, error=_short(exc, "SERVFAIL or REFUSED"))
        except dns.exception.Timeout:
            return DnsAnswer(DnsStatus.TEMPORARY, error="timed out")
        except (dns.exception.DNSException, OSError) as exc:
            return DnsAnswer(DnsStatus.TEMPORARY, error=_short(exc, type(exc).__name__))
        try:
            records = convert(answer)
        except (ValueError, AddressError) as exc:
            return DnsAnswer(DnsStatus.TEMPORARY, error=f"unusable answer: {exc}")
        # What is left of the TTL: an answer from dnspython's cache has aged since it came.
        ttl = max(0.0, answer.expiration - time.time())
        return DnsAnswer(DnsStatus.FOUND, records, self._ad(answer.response), ttl=ttl)

    def _ad(self, response: dns.message.Message | None) -> bool:
        return self._trusted and response is not None and bool(response.flags & dns.flags.AD)


def merge_address_answers(v4: DnsAnswer[str], v6: DnsAnswer[str]) -> DnsAnswer[str]:
    """A and AAAA as one answer: found if either found; secure only if both were."""
    records = v4.records + v6.records
    authenticated = v4.authenticated and v6.authenticated
    ttl = _shorter(v4.ttl, v6.ttl)
    temporary = [a for a in (v4, v6) if a.status is DnsStatus.TEMPORARY]
    if temporary:
        # A name whose other family failed may still be reachable, but whether it is
        # DNSSEC-secure is unknown: report the error and never claim authentication.
        return DnsAnswer(DnsStatus.TEMPORARY, records, False, temporary[0].error)
    if records:
        return DnsAnswer(DnsStatus.FOUND, records, authenticated, ttl=ttl)
    nxdomain = DnsStatus.NXDOMAIN in (v4.status, v6.status)
    status = DnsStatus.NXDOMAIN if nxdomain else DnsStatus.NODATA
    return DnsAnswer(status, (), authenticated, ttl=ttl)


def _shorter(a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return None  # one of them unknown: so is the pair's
    return min(a, b)


def _negative_ttl(response: dns.message.Message | None) -> float | None:
    """RFC 2308 §5: a negative answer may be used for min(SOA TTL, SOA MINIMUM) of the SOA in
    its authority section; dnspython's chaining result computes exactly that."""
    if not isinstance(response, dns.message.QueryMessage):
        return None
    try:
        return float(response.resolve_chaining().minimum_ttl)
    except (dns.exception.DNSException, KeyError):
        return None


def _nx_response(exc: dns.resolver.NXDOMAIN) -> dns.message.Message | None:
    responses: dict[Any, Any] = exc.kwargs.get("responses") or {}
    for response in responses.values():
        if isinstance(response, dns.message.Message):
            return response
    return None


def _short(exc: BaseException, fallback: str) -> str:
    text = str(exc).strip()
    return (text[:200] if text else fallback) or fallback


def _mx_records(answer: Any) -> tuple[MxRecord, ...]:
    records = []
    for rdata in answer:
        target = rdata.exchange.to_text(omit_final_dot=True)
        host = "" if target in ("", ".") else normalise_domain(target)
        records.append(MxRecord(int(rdata.preference), host))
    return tuple(sorted(records, key=lambda r: (r.preference, r.host)))


def _txt_records(answer: Any) -> tuple[str, ...]:
    # RFC 8461 §3.1, RFC 7208 §3.3: the strings of one record are joined with no separator.
    return tuple(b"".join(rdata.strings).decode("utf-8", "replace") for rdata in answer)


def _tlsa_records(answer: Any) -> tuple[TlsaRecord, ...]:
    return tuple(
        TlsaRecord(int(r.usage), int(r.selector), int(r.mtype), bytes(r.cert)) for r in answer
    )


def _address_records(answer: Any) -> tuple[str, ...]:
    return tuple(rdata.address for rdata in answer)
