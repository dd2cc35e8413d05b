"""The framework's floor: aiosmtpd in, aiosmtplib out, no checks at all.

Each message is relayed synchronously (the 250 goes back only after the upstream's 250, as the
gateway does), over a pool of at most 8 upstream connections that are kept open and reused,
like the gateway's [relay] max_connections = 8. No parsing, no DNS, no store, no logging.

    python -m bench.bare_relay LISTEN_PORT UPSTREAM_PORT
"""

from __future__ import annotations

import asyncio
import signal
import sys

import aiosmtplib
from aiosmtpd.smtp import SMTP, Envelope, Session

HOST = "127.0.0.1"
POOL = 8


class Relay:
    def __init__(self, port: int) -> None:
        self.port = port
        self.idle: list[aiosmtplib.SMTP] = []
        self.slots = asyncio.Semaphore(POOL)

    async def _client(self) -> aiosmtplib.SMTP:
        while self.idle:
            client = self.idle.pop()
            if client.is_connected:
                return client
        client = aiosmtplib.SMTP(hostname=HOST, port=self.port, local_hostname="bare.bench.test")
        await client.connect()
        return client

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        async with self.slots:
            client = await self._client()
            try:
                await client.sendmail(
                    envelope.mail_from, envelope.rcpt_tos, envelope.original_content or b""
                )
            except (aiosmtplib.SMTPException, OSError) as exc:
                client.close()
                return f"451 4.4.1 upstream failed: {exc}"
            self.idle.append(client)
        return "250 2.0.0 Ok: relayed"


async def main(listen: int, upstream: int) -> None:
    loop = asyncio.get_running_loop()
    handler = Relay(upstream)
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="bare.bench.test", decode_data=False, data_size_limit=None),
        HOST,
        listen,
        reuse_address=True,
        backlog=1024,
    )
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    server.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
