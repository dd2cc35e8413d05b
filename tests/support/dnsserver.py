"""An in-process DNS server on loopback that speaks real DNS over UDP and TCP.

The data is a plain table, in the spirit of mox's ``dns/mock.go``::

    records = {
        ("good.test", "MX"): ["10 mx.good.test."],
        ("_mta-sts.good.test", "TXT"): ['"v=STSv1; " "id=abc;"'],  # two strings, one record
        ("_smtp._tls.good.test", "TXT"): ["v=TLSRPTv1; rua=mailto:r@good.test"],  # one string
    }
    async with DnsServer(records, servfail={"broken.test"}, secure={"good.test"}) as server:
        DnsSettings(nameservers=(HostPort.parse(server.nameserver, 53),))

Rules, so that a test reads like a zone:

* Names compare case-insensitively, with or without the trailing dot.
* A name absent from the table is NXDOMAIN; a name present with other types only (or with
  names below it: an empty non-terminal, RFC 8020) is NODATA.
* TXT rdata in presentation form (starting with ``"``) may hold several strings; TXT text not
  starting with a quote is taken as one single string, spaces included.
* Rdata in the RFC 3597 generic form (``\\# 5 0301 01abcd``) goes on the wire as given, even
  where dnspython would refuse to build it.
* ``servfail``, ``refused`` and ``drop`` (no answer at all: the client times out) take names
  (every type) or ``(name, type)`` pairs. ``truncate`` does the same and forces TC over UDP,
  so the client must retry over TCP; answers too big for the client's UDP size get TC anyway.
* Answers for ``secure`` names (or ``(name, type)`` pairs) carry the AD bit, as a validating
  resolver sets it for a DNSSEC-secure answer, positive or negative.
* ``delay`` holds every answer back that many seconds (to make concurrent lookups overlap).
* ``max_in_flight`` is the most queries the server was holding at once.
* Every query received is counted in ``queries[(name, TYPE)]`` (normalised name) and logged in
  order in ``log`` as ``Query(name, TYPE, transport)`` with the name exactly as received.

All the tables are plain attributes: a test may change them between lookups.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections import Counter
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

Key = tuple[str, str]
Selector = str | tuple[str, str]

_SOA = "ns.{zone}. hostmaster.{zone}. 1 3600 600 86400 300"
_CLASSIC_UDP_SIZE = 512


@dataclass(frozen=True)
class Query:
    name: str  # exactly as received, e.g. "good.test."
    rdtype: str  # "MX", "TXT", ...
    transport: str  # "udp" or "tcp"


def normalise(name: str) -> str:
    """The table's form of a name: lower case, no trailing dot."""
    return name.lower().rstrip(".")


class DnsServer:
    def __init__(
        self,
        records: Mapping[Key, Sequence[str]] | None = None,
        *,
        servfail: Iterable[Selector] = (),
        refused: Iterable[Selector] = (),
        drop: Iterable[Selector] = (),
        truncate: Iterable[Selector] = (),
        secure: Iterable[Selector] = (),
        delay: float = 0.0,
        ttl: int = 300,
        host: str = "127.0.0.1",
    ) -> None:
        self.records: dict[Key, list[str]] = {k: list(v) for k, v in (records or {}).items()}
        self.servfail: set[Selector] = set(servfail)
        self.refused: set[Selector] = set(refused)
        self.drop: set[Selector] = set(drop)
        self.truncate: set[Selector] = set(truncate)
        self.secure: set[Selector] = set(secure)
        self.delay = delay
        self.ttl = ttl
        self.host = host
        self.port = 0
        self.queries: Counter[Key] = Counter()
        self.log: list[Query] = []
        self.in_flight = 0  # queries being answered right now (held back by ``delay``)
        self.max_in_flight = 0
        self.errors: list[Exception] = []  # the server itself went wrong; raised on leaving
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    # --- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> DnsServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
        if self.errors and exc is None:
            raise RuntimeError(f"the test DNS server failed: {self.errors[0]!r}") from self.errors[
                0
            ]

    @property
    def nameserver(self) -> str:
        """``host:port`` as the gateway's [dns] nameservers setting takes it."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        # TCP takes a free port first; UDP must then get the same number, which can be taken.
        for _ in range(50):
            tcp = await asyncio.start_server(self._serve_tcp, self.host, 0)
            port = tcp.sockets[0].getsockname()[1]
            try:
                udp, _ = await loop.create_datagram_endpoint(
                    lambda: _UdpProtocol(self), local_addr=(self.host, port)
                )
            except OSError:
                tcp.close()
                await tcp.wait_closed()
                continue
            self._tcp, self._udp, self.port = tcp, udp, port
            return
        raise OSError("no port free for both UDP and TCP")

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
        for task in list(self._tasks):
            task.cancel()
        for writer in list(self._writers):
            writer.close()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for writer in list(self._writers):
            with contextlib.suppress(OSError, ConnectionError):
                await writer.wait_closed()
        if self._tcp is not None:
            await self._tcp.wait_closed()
            self._tcp = None

    # --- what tests ask ----------------------------------------------------------------------

    def count(self, name: str, rdtype: str) -> int:
        return self.queries[(normalise(name), rdtype.upper())]

    @property
    def total(self) -> int:
        return sum(self.queries.values())

    def reset_counts(self) -> None:
        self.queries.clear()
        self.log.clear()

    # --- answering ---------------------------------------------------------------------------

    def _track(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer_udp(self, data: bytes, addr: tuple[str, int]) -> None:
        wire = await self._respond(data, "udp")
        if wire is not None and self._udp is not None:
            self._udp.sendto(wire, addr)

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            while True:
                try:
                    (length,) = struct.unpack("!H", await reader.readexactly(2))
                    data = await reader.readexactly(length)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                wire = await self._respond(data, "tcp")
                if wire is not None:
                    writer.write(struct.pack("!H", len(wire)) + wire)
                    await writer.drain()
        finally:
            if task is not None:
                self._tasks.discard(task)
            self._writers.discard(writer)
            writer.close()

    async def _respond(self, data: bytes, transport: str) -> bytes | None:
        try:
            return await self._respond_or_raise(data, transport)
        except Exception as exc:  # a broken fake must fail the test, not just go quiet
            self.errors.append(exc)
            return None

    async def _respond_or_raise(self, data: bytes, transport: str) -> bytes | None:
        try:
            query = dns.message.from_wire(data)
        except dns.exception.DNSException:
            return None
        if len(query.question) != 1:
            response = dns.message.make_response(query)
            response.set_rcode(dns.rcode.FORMERR)
            return response.to_wire()
        question = query.question[0]
        name = question.name.to_text()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.queries[(normalise(name), rdtype)] += 1
        self.log.append(Query(name, rdtype, transport))
        if self._selected(self.drop, name, rdtype):
            return None
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        response = self._build(query, name, rdtype)
        if transport == "tcp":
            return response.to_wire(max_size=65535)
        limit = max(query.payload, _CLASSIC_UDP_SIZE) if query.edns >= 0 else _CLASSIC_UDP_SIZE
        if not self._selected(self.truncate, name, rdtype):
            try:
                return response.to_wire(max_size=limit)
            except dns.exception.TooBig:
                pass
        truncated = dns.message.make_response(query, recursion_available=True)
        truncated.flags |= dns.flags.TC
        return truncated.to_wire()

    def _build(self, query: dns.message.Message, name: str, rdtype: str) -> dns.message.Message:
        response = dns.message.make_response(query, recursion_available=True)
        if self._selected(self.servfail, name, rdtype):
            response.set_rcode(dns.rcode.SERVFAIL)
            return response
        if self._selected(self.refused, name, rdtype):
            response.set_rcode(dns.rcode.REFUSED)
            return response
        if self._selected(self.secure, name, rdtype):
            response.flags |= dns.flags.AD
        wanted = normalise(name)
        table = {(normalise(n), t.upper()): v for (n, t), v in self.records.items()}
        rdatas = table.get((wanted, rdtype))
        if rdatas:
            rrset = response.find_rrset(
                response.answer,
                query.question[0].name,
                dns.rdataclass.IN,
                dns.rdatatype.from_text(rdtype),
                create=True,
            )
            for text in rdatas:
                rrset.add(_rdata(rdtype, text), self.ttl)
            return response
        exists = any(n == wanted or n.endswith("." + wanted) for n, _ in table)
        if not exists:
            response.set_rcode(dns.rcode.NXDOMAIN)
        response.authority.append(_soa(wanted, self.ttl))
        return response

    @staticmethod
    def _selected(selectors: set[Selector], name: str, rdtype: str) -> bool:
        wanted = normalise(name)
        for item in selectors:
            if isinstance(item, str):
                if normalise(item) == wanted:
                    return True
            elif normalise(item[0]) == wanted and item[1].upper() == rdtype:
                return True
        return False


def _rdata(rdtype: str, text: str) -> dns.rdata.Rdata:
    rdclass, typ = dns.rdataclass.IN, dns.rdatatype.from_text(rdtype)
    if text.startswith("\\# "):
        # RFC 3597 generic form, sent as is: lets a test serve rdata that dnspython's own
        # classes would refuse to build (a TLSA digest of the wrong length, say).
        _, length, *hex_parts = text.split()
        data = bytes.fromhex("".join(hex_parts))
        assert len(data) == int(length), "generic rdata length does not match its data"
        return dns.rdata.GenericRdata(rdclass, typ, data)
    if rdtype == "TXT" and not text.startswith('"'):
        text = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return dns.rdata.from_text(rdclass, typ, text)


def _soa(name: str, ttl: int) -> dns.rrset.RRset:
    zone = name.rsplit(".", 1)[-1] if name else "test"  # the top label stands in for the zone
    return dns.rrset.from_text(f"{zone}.", ttl, "IN", "SOA", _SOA.format(zone=zone))


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self._server = server

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self._server._track(self._server._answer_udp(data, addr))


__all__ = ["DnsServer", "Query", "normalise"]
