"""A sandbox for the README's walkthrough: the test rig's DNS and HTTPS servers (knot, unbound,
nginx on loopback, serving the .test domains of rig/zones.py), an upstream on
127.0.0.1:10026 that prints what it receives, the two MX hosts of deliver-sts.test
(127.0.0.21 and .22, port 10027, STARTTLS with certificates from the rig's CA) saying what
they receive, and a gateway configuration that uses them (with `[delivery] direct = "none"`:
the README's "Deliver it yourself" turns it to "flagged").

    make demo      # (python -m scripts.demo) then follow README.md, "Five minutes with the gateway"
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from rig.mx import start_mx
from rig.rig import running_rig
from rig.upstream import Upstream
from rig.zones import by_name

ROOT = Path(__file__).resolve().parent.parent

WORK = ROOT / "var" / "demo"
UPSTREAM_PORT = 10026
MX_PORT = 10027
MX_DOMAIN = "deliver-sts.test"  # MTA-STS enforce naming both MX hosts (rig/zones.py)


class PrintingUpstream:
    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        print(f"\n=== upstream received from {envelope.mail_from} for {envelope.rcpt_tos} ===")
        print(content.decode("utf-8", "replace").replace("\r\n", "\n"))
        sys.stdout.flush()
        return "250 2.0.0 Ok: accepted by the demo upstream"


def _say_deliveries(server: Upstream) -> None:
    """Print a line for each message `server` (an MX host) accepts."""
    seen = 0
    while True:
        messages = server.wait_for(seen + 1, timeout=3600)
        for message in messages[seen:]:
            tls = f"{message.tls_version} {message.cipher}" if message.tls_version else "NO TLS"
            print(f"\n=== MX {server.name} received from {message.mail_from} for ", end="")
            print(f"{list(message.rcpt_tos)} over {tls} ===")
            sys.stdout.flush()
        seen = len(messages)


def main() -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    with running_rig(WORK / "rig") as rig:
        config = rig.write_config(
            WORK / "gateway.toml",
            smtp={"listen": "127.0.0.1:10025", "hostname": "gateway.school.test"},
            relay={"port": UPSTREAM_PORT},
            policy={"local_domains": ["school.test"]},
            store={"data_dir": str(WORK / "data")},
            review={"reviewers": ["dsl@school.test"]},
            notify={"organisation": "Demo School"},
            delivery={
                "direct": "none",
                "mx_port": MX_PORT,
                "allow_private_addresses": True,  # the demo's MX hosts are on loopback
                "ca_file": str(rig.ca_file),
            },
            log={"format": "console"},
        )
        upstream = Controller(PrintingUpstream(), hostname="127.0.0.1", port=UPSTREAM_PORT)
        upstream.start()
        row = by_name(MX_DOMAIN)
        mx = [start_mx(rig.ca, host, row.address(host), MX_PORT) for host in row.mx_hosts]
        for server in mx:
            threading.Thread(target=_say_deliveries, args=(server,), daemon=True).start()
        print(f"test DNS on 127.0.0.1:{rig.dns_port}, policies on 127.0.0.1:{rig.https_port}")
        print(f"upstream printing on 127.0.0.1:{UPSTREAM_PORT}")
        print(f"MX hosts of {MX_DOMAIN}: {', '.join(f'{m.host}:{m.port}' for m in mx)}")
        print(f"gateway configuration: {config}")
        print(f"next, in another terminal: .venv/bin/gateway serve --config {config}")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
        finally:
            upstream.stop()
            for server in mx:
                server.close()


if __name__ == "__main__":
    main()
