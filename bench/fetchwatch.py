"""A TCP relay in front of the rig's nginx that watches the gateway's MTA-STS policy fetches.

The gateway reaches policy hosts at [mta_sts] https_port; in the cold-start scenario that port
is this relay, which forwards every connection to nginx untouched (TLS end to end: the
gateway still checks nginx's certificate) after reading the server name (SNI) from the TLS
ClientHello. The gateway opens one connection per fetch (no keep-alive, by design), so each
connection is one policy fetch of mta-sts.<domain>. Each one is logged as a JSON line
{"sni", "start", "end"} (monotonic clock) to the events file, from which the harness counts
fetches per domain and the most that were in flight at once.

Connections for hosts listed as slow wait `delay` seconds before they are forwarded: a policy
host that is slow to answer, so the scenario can show that messages to other domains do not
wait for it.

    python -m bench.fetchwatch LISTEN_PORT NGINX_PORT EVENTS_FILE [DELAY SLOW_HOST...]
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
from pathlib import Path
from typing import TextIO

HOST = "127.0.0.1"


def server_name(hello: bytes) -> str:
    """The SNI host name in a TLS ClientHello record, or "" if there is none."""
    try:
        if hello[0] != 0x16 or hello[5] != 0x01:
            return ""
        pos = 5 + 4 + 2 + 32  # record header, handshake header, version, random
        pos += 1 + hello[pos]  # session id
        pos += 2 + int.from_bytes(hello[pos : pos + 2], "big")  # cipher suites
        pos += 1 + hello[pos]  # compression methods
        end = pos + 2 + int.from_bytes(hello[pos : pos + 2], "big")
        pos += 2
        while pos + 4 <= end:
            kind = int.from_bytes(hello[pos : pos + 2], "big")
            size = int.from_bytes(hello[pos + 2 : pos + 4], "big")
            if kind == 0:  # server_name: list length, name type, name length, name
                length = int.from_bytes(hello[pos + 7 : pos + 9], "big")
                return hello[pos + 9 : pos + 9 + length].decode("ascii", "replace").lower()
            pos += 4 + size
    except IndexError:
        return ""
    return ""


async def _read_hello(reader: asyncio.StreamReader) -> bytes:
    data = await reader.readexactly(5)
    length = int.from_bytes(data[3:5], "big")
    return data + await reader.readexactly(length)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(ConnectionError, OSError, RuntimeError):
            writer.write_eof()


class Watch:
    def __init__(self, upstream: int, log: TextIO, delay: float, slow: set[str]) -> None:
        self.upstream = upstream
        self.log = log
        self.delay = delay
        self.slow = slow

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        start = time.monotonic()
        sni = ""
        try:
            hello = await _read_hello(reader)
            sni = server_name(hello)
            if sni in self.slow:
                await asyncio.sleep(self.delay)
            up_reader, up_writer = await asyncio.open_connection(HOST, self.upstream)
            up_writer.write(hello)
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            up_writer.close()
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            event = {"sni": sni, "start": start, "end": time.monotonic()}
            self.log.write(json.dumps(event) + "\n")
            self.log.flush()


async def main(argv: list[str]) -> None:
    listen, upstream, events = int(argv[0]), int(argv[1]), argv[2]
    delay = float(argv[3]) if len(argv) > 3 else 0.0
    slow = {name.lower() for name in argv[4:]}
    loop = asyncio.get_running_loop()
    with Path(events).open("a") as log:  # noqa: ASYNC230  (opened once, before serving)
        watch = Watch(upstream, log, delay, slow)
        server = await asyncio.start_server(watch.handle, HOST, listen, backlog=1024)
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        server.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
