"""A sandbox for the README's walkthrough: the test rig's DNS and HTTPS servers (knot, unbound,
nginx on loopback, serving the .test domains of rig/zones.py), an upstream on
127.0.0.1:10026 that prints what it receives, the two MX hosts of deliver-sts.test
(127.0.0.21 and .22, port 10027, STARTTLS with certificates from the rig's CA) saying what
they receive, a gateway configuration that uses them (with `[delivery] direct = "none"`:
the README's "Deliver it yourself" turns it to "flagged"; the web UI on 127.0.0.1:8025), and a
reviewer account for the web UI, whose password it prints.

    make demo      # (python -m scripts.demo) then follow README.md, "Five minutes with the gateway"
"""

from __future__ import annotations

import errno
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from rig.mx import start_mx
from rig.rig import Rig, running_rig
from rig.upstream import Upstream
from rig.zones import by_name

ROOT = Path(__file__).resolve().parent.parent

# GATEWAY_DEMO_DIR: for the test that walks the README through the demo, beside a real one.
WORK = Path(os.environ.get("GATEWAY_DEMO_DIR") or ROOT / "var" / "demo")
GATEWAY = Path(sys.executable).parent / "gateway"
SMTP_PORT = 10025
UPSTREAM_PORT = 10026
MX_PORT = 10027
WEB = "127.0.0.1:8025"
REVIEWER = "dsl"  # a web UI account, made (or given a new password) at every start
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


def _in_use(host: str, port: int) -> bool:
    with socket.socket() as probe:
        # As the servers bind: a connection of an earlier run in TIME_WAIT is no clash.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def _ports_free(mx_addresses: list[str]) -> bool:
    """Say, in a line, what stands in the demo's way; False when it cannot start."""
    ours = [("127.0.0.1", UPSTREAM_PORT)] + [(a, MX_PORT) for a in mx_addresses]
    taken = [f"{host}:{port}" for host, port in ours if _in_use(host, port)]
    if taken:
        print(f"demo: {', '.join(taken)} already in use: is another `make demo` running? stop it")
        return False
    web_host, web_port = WEB.split(":")
    gateway_ports = [("127.0.0.1", SMTP_PORT), (web_host, int(web_port))]
    busy = [f"{host}:{port}" for host, port in gateway_ports if _in_use(host, port)]
    if busy:
        print(
            f"demo: note: {' and '.join(busy)} in use (`make run`, or another gateway?): stop"
            " it (Ctrl-C in its terminal) before you start the demo's gateway"
        )
    return True


def _reviewer_account(config: Path) -> str:
    """Make the reviewer's account, or give it a new password; the password."""
    password = secrets.token_urlsafe(12)
    for action in (["add", REVIEWER, "--role", "admin"], ["passwd", REVIEWER]):
        done = subprocess.run(
            [str(GATEWAY), "users", *action, "--by", "make demo", "--config", str(config)],
            input=password + "\n",
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode == 0:
            return password
    raise SystemExit(f"demo: could not make the web UI account: {done.stderr.strip()}")


def _write_config(rig: Rig) -> Path:
    return rig.write_config(
        WORK / "gateway.toml",
        smtp={"listen": f"127.0.0.1:{SMTP_PORT}", "hostname": "gateway.school.test"},
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
        # Readable in a terminal; a real gateway logs JSON lines (the default).
        log={"format": "console"},
        web={"enabled": True, "listen": WEB, "public_url": f"http://{WEB}"},
    )


def _stop_on_signals() -> None:
    """Ctrl-C and SIGTERM both stop the demo and its servers: Python leaves SIGINT ignored
    when the demo was started in the background, and a plain SIGTERM would skip the rig's
    clean-up."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)


def main() -> None:
    _stop_on_signals()
    row = by_name(MX_DOMAIN)
    if not _ports_free([row.address(host) for host in row.mx_hosts]):
        sys.exit(1)
    WORK.mkdir(parents=True, exist_ok=True)
    with running_rig(WORK / "rig") as rig:
        config = _write_config(rig)
        password = _reviewer_account(config)
        upstream = Controller(PrintingUpstream(), hostname="127.0.0.1", port=UPSTREAM_PORT)
        upstream.start()
        mx = [start_mx(rig.ca, host, row.address(host), MX_PORT) for host in row.mx_hosts]
        for server in mx:
            threading.Thread(target=_say_deliveries, args=(server,), daemon=True).start()
        print(f"test DNS on 127.0.0.1:{rig.dns_port}, policies on 127.0.0.1:{rig.https_port}")
        print(f"upstream printing on 127.0.0.1:{UPSTREAM_PORT}")
        print(f"MX hosts of {MX_DOMAIN}: {', '.join(f'{m.host}:{m.port}' for m in mx)}")
        print(f"gateway configuration: {config}")
        print(f"next, in another terminal: .venv/bin/gateway serve --config {config}")
        print(f"then the web UI: http://{WEB}/ (sign in as {REVIEWER}, password {password})")
        sys.stdout.flush()
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
