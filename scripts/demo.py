"""A sandbox for the README's walkthrough: the test rig's DNS and HTTPS servers (knot, unbound,
nginx on loopback, serving the .test domains of rig/zones.py), an upstream on
127.0.0.1:10026 that prints what it receives, and a gateway configuration that uses them.

    make demo      # (python -m scripts.demo) then follow README.md, "Five minutes with the gateway"
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from rig.rig import running_rig

ROOT = Path(__file__).resolve().parent.parent

WORK = ROOT / "var" / "demo"
UPSTREAM_PORT = 10026


class PrintingUpstream:
    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        print(f"\n=== upstream received from {envelope.mail_from} for {envelope.rcpt_tos} ===")
        print(content.decode("utf-8", "replace").replace("\r\n", "\n"))
        sys.stdout.flush()
        return "250 2.0.0 Ok: accepted by the demo upstream"


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
            log={"format": "console"},
        )
        upstream = Controller(PrintingUpstream(), hostname="127.0.0.1", port=UPSTREAM_PORT)
        upstream.start()
        print(f"test DNS on 127.0.0.1:{rig.dns_port}, policies on 127.0.0.1:{rig.https_port}")
        print(f"upstream printing on 127.0.0.1:{UPSTREAM_PORT}")
        print(f"gateway configuration: {config}")
        print(f"next, in another terminal: .venv/bin/gateway serve --config {config}")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
        finally:
            upstream.stop()


if __name__ == "__main__":
    main()
