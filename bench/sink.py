"""smtp-sink, the upstream every target relays to, with a live count of what it received.

``smtp-sink -c`` rewrites one counter line (``sess=N quit=N mesg=N``, separated by CR) each
time a message ends; a reader thread keeps the latest ``mesg`` and when it last changed, so a
run can wait until the sink has every message it expects (relayed copies and the gateway's
notices) and take that moment as the end of the run.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench.tools import LOOPBACK, ROOT, free_port, need, wait_smtp

# smtp-sink's counter; bench/tls_sink.py adds how many of the messages came over TLS.
_COUNTER = re.compile(rb"mesg=(\d+)(?: tls=(\d+))?")


class Sink:
    def __init__(self, name: str = "sink") -> None:
        self.name = name
        self.port = free_port()
        self._proc: subprocess.Popen[bytes] | None = None
        self._count = 0
        self._tls = 0
        self._changed_at = 0.0
        self._cond = threading.Condition()
        self._reader: threading.Thread | None = None

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def _argv(self) -> list[str]:
        # -u: drop root; -m/backlog: room for 200+ concurrent sessions (the 1 MB scenario).
        argv = [need("smtp-sink"), "-c", "-u", "nobody", "-m", "1024"]
        return [*argv, f"{LOOPBACK}:{self.port}", "1024"]

    def start(self) -> Sink:
        self._proc = subprocess.Popen(
            self._argv(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        self._reader = threading.Thread(target=self._read, name=f"{self.name}-count", daemon=True)
        self._reader.start()
        wait_smtp(self.port, self._proc)
        return self

    def _read(self) -> None:
        assert self._proc is not None
        assert self._proc.stdout is not None
        out = self._proc.stdout
        tail = b""
        while True:
            chunk = out.read1(65536)
            if not chunk:
                return
            tail = (tail + chunk)[-256:]
            found = _COUNTER.findall(tail)
            if found:
                with self._cond:
                    count = int(found[-1][0])
                    self._tls = int(found[-1][1] or 0)
                    if count != self._count:
                        self._count = count
                        self._changed_at = time.monotonic()
                        self._cond.notify_all()

    @property
    def count(self) -> int:
        with self._cond:
            return self._count

    @property
    def over_tls(self) -> int:
        """Of the messages counted, those that came over TLS (0 for smtp-sink, which has none)."""
        with self._cond:
            return self._tls

    def wait_for(self, count: int, timeout: float) -> tuple[int, float]:
        """Wait until the sink has `count` messages in all; the count reached and when the last
        one arrived (monotonic)."""
        with self._cond:
            self._cond.wait_for(lambda: self._count >= count, timeout)
            return self._count, self._changed_at

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)


class TlsSink(Sink):
    """bench/tls_sink.py: a sink offering STARTTLS with `cert` (the chain) and `key`, on
    127.0.0.1 and on `address` (the address its MX name resolves to in the bench zones)."""

    def __init__(self, cert: Path, key: Path, address: str) -> None:
        super().__init__("tls-sink")
        self.cert = cert
        self.key = key
        self.address = address

    def _argv(self) -> list[str]:
        argv = [sys.executable, "-m", "bench.tls_sink", str(self.cert), str(self.key)]
        return [*argv, str(self.port), LOOPBACK, self.address]
