"""A message sink that speaks STARTTLS: the MX host of the direct-delivery scenario, and the
ceiling of the TLS scenarios (smtp-sink has no TLS).

A lean asyncio server: greeting, EHLO (PIPELINING, SIZE, 8BITMIME, STARTTLS before TLS and
REQUIRETLS after it, RFC 8689 §4), STARTTLS (RFC 3207), MAIL, RCPT, DATA (read up to the end
marker and dropped), RSET, NOOP, QUIT. It does no checks. Like ``smtp-sink -c`` it writes a
counter line after every message (``mesg=N``, and ``tls=N`` of them over TLS) to stdout, which
bench.sink.Sink reads.

    python -m bench.tls_sink CERT_CHAIN KEY PORT ADDRESS...
"""

from __future__ import annotations

import asyncio
import ssl
import sys

NAME = b"tls-sink.bench.test"
_EHLO = [b"PIPELINING", b"SIZE 104857600", b"8BITMIME"]
_END = b"\r\n.\r\n"


class Counter:
    def __init__(self) -> None:
        self.messages = 0
        self.over_tls = 0

    def add(self, tls: bool) -> None:
        self.messages += 1
        self.over_tls += tls
        sys.stdout.write(f"mesg={self.messages} tls={self.over_tls}\n")
        sys.stdout.flush()


def _ehlo(tls: bool) -> bytes:
    extensions = [*_EHLO, b"REQUIRETLS" if tls else b"STARTTLS"]
    lines = [NAME, *extensions]
    out = b"".join(b"250-" + line + b"\r\n" for line in lines[:-1])
    return out + b"250 " + lines[-1] + b"\r\n"


async def _data(reader: asyncio.StreamReader) -> None:
    """Read up to and including the end-of-data line (RFC 5321 §4.1.1.4); the body is dropped."""
    first = await reader.readline()
    if first == b".\r\n":
        return
    await reader.readuntil(_END)


async def _session(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    context: ssl.SSLContext,
    counter: Counter,
) -> None:
    tls = False
    writer.write(b"220 " + NAME + b" ESMTP bench TLS sink\r\n")
    while line := await reader.readline():
        verb = line[:4].upper()
        if verb in (b"EHLO", b"HELO"):
            writer.write(_ehlo(tls) if verb == b"EHLO" else b"250 " + NAME + b"\r\n")
        elif verb == b"STAR" and not tls:
            writer.write(b"220 2.0.0 Ready to start TLS\r\n")
            await writer.drain()
            await writer.start_tls(context)
            tls = True
        elif verb == b"DATA":
            writer.write(b"354 End data with <CR><LF>.<CR><LF>\r\n")
            await writer.drain()
            await _data(reader)
            counter.add(tls)
            writer.write(b"250 2.0.0 Ok: queued\r\n")
        elif verb == b"QUIT":
            writer.write(b"221 2.0.0 Bye\r\n")
            break
        else:  # MAIL, RCPT, RSET, NOOP: accepted
            writer.write(b"250 2.0.0 Ok\r\n")
        await writer.drain()
    await writer.drain()
    writer.close()


async def serve(cert: str, key: str, port: int, addresses: list[str]) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    counter = Counter()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await _session(reader, writer, context, counter)
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            writer.close()

    server = await asyncio.start_server(handle, addresses, port, backlog=1024, limit=1 << 20)
    async with server:
        await server.serve_forever()


def main() -> None:
    cert, key, port, *addresses = sys.argv[1:]
    asyncio.run(serve(cert, key, int(port), addresses))


if __name__ == "__main__":
    main()
