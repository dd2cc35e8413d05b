"""The four things the load is sent to: smtp-sink directly, the bare relay, Postfix, the gateway.

Each target is (re)started per scenario where that matters for the figures (the Python
processes, so that each scenario has its own peak RSS and no heap left over from the last),
and tells the harness which processes to measure and how many messages the sink receives per
message sent.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.postfix import Postfix
from bench.scenarios import Scenario
from bench.sink import Sink
from bench.tools import LOOPBACK, ROOT, free_port, wait_smtp
from gateway.store.sqlite.store import HELD_DB
from rig.rig import Rig

GATEWAY = Path(sys.executable).parent / "gateway"
REVIEWERS = ["dsl@school.test"]
BODY_KEYWORDS = ["child protection plan", "section 47", "looked after child", "disclosure"]
# Enough for the 200 concurrent sessions of the 1 MB scenario (the default is 100; it counts
# per worker process).
MAX_CONNECTIONS = 300
# [smtp] workers: one per core, as config/gateway.example.toml advises.
WORKERS = os.cpu_count() or 1


class Target:
    name = ""
    port = 0

    def takes_part(self, scenario: Scenario) -> bool:
        """Whether this target is measured in `scenario`."""
        return self.name not in scenario.skip

    def begin(self, scenario: Scenario) -> None:
        """Ready for `scenario` (restart what needs a fresh process)."""

    def end(self) -> None:
        """After the scenario."""

    def pids(self) -> list[int]:
        raise NotImplementedError

    def ports(self) -> list[int]:
        """Where the load goes: one port, or one per node (the load is split evenly)."""
        return [self.port]

    def db_pids(self) -> list[int]:
        """A database server outside the target's own processes, measured apart."""
        return []

    def held_count(self) -> int | None:
        """Holds in the target's store (None: the target has no hold store)."""
        return None

    def single_process(self) -> bool:
        return True

    def relayed_per_message(self, scenario: Scenario) -> int:
        """Copies of each message the sink receives (a multi-recipient message is one)."""
        return 1

    def sink_for(self, scenario: Scenario) -> str:
        """Which sink has the copies: "plain" (smtp-sink) or "tls" (bench/tls_sink.py)."""
        return scenario.sink

    def notices_per_message(self, scenario: Scenario) -> int:
        return 0

    def settle(self, timeout: float = 60.0) -> None:
        """Wait until nothing is left in flight inside the target."""

    def stop(self) -> None:
        """At the end of the whole run."""


class SinkTarget(Target):
    """smtp-sink direct; in the TLS scenarios the TLS sink direct (the load is sent in the
    clear to it when the scenario's client is smtp-source, over STARTTLS when it is TLS)."""

    name = "sink"

    def __init__(self, sink: Sink, tls_sink: Sink | None = None) -> None:
        self.sinks = {"plain": sink, "tls": tls_sink or sink}
        self.sink = sink
        self.port = sink.port

    def sink_for(self, scenario: Scenario) -> str:
        return "tls" if scenario.sink == "tls" or scenario.client_tls else "plain"

    def begin(self, scenario: Scenario) -> None:
        self.sink = self.sinks[self.sink_for(scenario)]
        self.port = self.sink.port

    def pids(self) -> list[int]:
        return [self.sink.pid]


class _PythonProcess(Target):
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0

    def _start(self, argv: list[str]) -> None:
        self.runs += 1
        self.port = free_port()
        log = self.workdir / f"{self.name}-{self.runs}.log"
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [*argv, *self._port_args()],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        try:
            wait_smtp(self.port, self.proc)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n{log.read_text()[-3000:]}") from None

    def _port_args(self) -> list[str]:
        return []

    def pids(self) -> list[int]:
        assert self.proc is not None
        return [self.proc.pid]

    def end(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def stop(self) -> None:
        self.end()


class BareTarget(_PythonProcess):
    name = "bare"

    def __init__(self, workdir: Path, sink_port: int) -> None:
        super().__init__(workdir)
        self.sink_port = sink_port

    def begin(self, scenario: Scenario) -> None:
        self._start([sys.executable, "-m", "bench.bare_relay"])

    def _port_args(self) -> list[str]:
        return [str(self.port), str(self.sink_port)]


class PostfixTarget(Target):
    name = "postfix"

    def __init__(self, postfix: Postfix, tls_postfix: Postfix | None = None) -> None:
        self.plain = postfix
        self.tls = tls_postfix or postfix
        self.postfix = postfix
        self.port = postfix.port

    def begin(self, scenario: Scenario) -> None:
        """The TLS scenarios use the instance with smtpd TLS and verified TLS to the MX."""
        self.postfix = self.tls if scenario.direct or scenario.client_tls else self.plain
        self.port = self.postfix.port

    def pids(self) -> list[int]:
        return [self.postfix.master_pid]

    def single_process(self) -> bool:
        return False

    def settle(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.postfix.queue_empty() and time.monotonic() < deadline:
            time.sleep(0.05)


@dataclass(frozen=True)
class GatewayTls:
    """What the TLS scenarios give the gateway: its own certificate for STARTTLS from clients,
    and the port its direct deliveries dial (the TLS sink's)."""

    cert: Path
    key: Path
    mx_port: int


class GatewayTarget(_PythonProcess):
    name = "gateway"

    def __init__(
        self,
        workdir: Path,
        rig: Rig,
        sink_port: int,
        fetchwatch_port: int,
        variant: str = "",
        workers: int = WORKERS,
        tls: GatewayTls | None = None,
        node: str = "",
    ) -> None:
        super().__init__(workdir)
        self.node = node  # one of several nodes (bench/pgnodes.py): its own files
        self.store: dict[str, object] = {}  # more [store] settings (backend, key_file)
        self.audit: dict[str, object] = {}
        self.env: dict[str, str] = {}
        self.variant = variant  # bench/variant.py patches: experiments only
        self.workers = workers
        if variant or workers != WORKERS:
            self.name = f"gateway[{variant or 'stock'}, workers={workers}]"
        self.rig = rig
        self.sink_port = sink_port
        self.fetchwatch_port = fetchwatch_port
        self.tls = tls
        self.config: Path | None = None
        self.data_dir: Path | None = None
        self.log: Path | None = None

    def write_config(self, scenario: Scenario) -> Path:
        """A production-like configuration: as many workers as cores (as the example config
        says), the rig's validating resolver with trust_ad (so DANE is checked), MTA-STS
        against the rig's HTTPS server, the rig's allowlist, a real data_dir (hold store,
        audit trail, relay journal, policy cache; synchronous=FULL and fsync as shipped),
        notices on, a reviewer, body keywords, JSON logs at info level."""
        # A data_dir per scenario: the warm-up fills its policy cache, and a notice backlog
        # left by one scenario cannot be sent in the middle of the next.
        name = scenario.name
        if self.variant or self.workers != WORKERS:
            name += f"-{self.variant or 'stock'}-{self.workers}"
        name += self.node
        # And per start: with --runs N, each run's cold start must find an empty policy cache.
        name += f"-{self.runs + 1}"
        self.data_dir = self.workdir / f"gateway-data-{name}"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        mta_sts: dict[str, object] = {}
        if scenario.cold:  # through the fetch watcher, which counts and slows fetches
            mta_sts["https_port"] = self.fetchwatch_port
        smtp: dict[str, object] = {
            "listen": f"{LOOPBACK}:{self.port}",
            "hostname": "gateway.school.test",
            "max_connections": MAX_CONNECTIONS,
            "workers": self.workers,
        }
        delivery: dict[str, object] = {}
        if self.tls is not None and scenario.client_tls:
            smtp.update(tls_cert=self.tls.cert, tls_key=self.tls.key)
        if self.tls is not None and scenario.direct:
            # Flagged mail to the MX host (the TLS sink on its own loopback address), whose
            # certificate comes from the rig's CA: the MTA-STS policy names the host.
            delivery = {
                "direct": "flagged",
                "mx_port": self.tls.mx_port,
                "allow_private_addresses": True,
                "ca_file": self.rig.ca_file,
            }
        self.config = self.rig.write_config(
            self.workdir / f"gateway-{name}.toml",
            smtp=smtp,
            delivery=delivery,
            relay={"host": LOOPBACK, "port": self.sink_port},
            classify={"body_keywords": BODY_KEYWORDS},
            dns={"timeout": 5.0},
            mta_sts=mta_sts,
            policy={"local_domains": ["school.test"], "on_dns_error": "hold"},
            store={"data_dir": self.data_dir, **self.store},
            audit=self.audit,
            review={"reviewers": REVIEWERS, "escalation_contacts": ["head@school.test"]},
            notify={"enabled": True, "organisation": "Bench Primary School"},
            log={"level": "info", "format": "json"},
        )
        return self.config

    def begin(self, scenario: Scenario) -> None:
        self.port = free_port()
        config = self.write_config(scenario)
        self.runs += 1
        self.log = self.workdir / f"gateway{self.node}-{self.runs}.log"
        env = {**os.environ, **self.env}
        if self.variant:  # bench/variant_site/sitecustomize.py patches every process
            site = f"{ROOT / 'bench' / 'variant_site'}{os.pathsep}{ROOT}"
            env["PYTHONPATH"] = site + (
                os.pathsep + env["PYTHONPATH"] if "PYTHONPATH" in env else ""
            )
            env["BENCH_VARIANT"] = self.variant
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [str(GATEWAY), "serve", "--config", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                env=env,
            )
        try:
            wait_smtp(self.port, self.proc)
            # The leader listens first, then starts the other workers: wait for them all.
            deadline = time.monotonic() + 30
            while self.log.read_text().count('"event": "listening"') < self.workers:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("not every worker is listening")
                time.sleep(0.05)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n{self.log.read_text()[-3000:]}") from None

    def single_process(self) -> bool:
        return self.workers == 1

    def relayed_per_message(self, scenario: Scenario) -> int:
        return scenario.relayed

    def notices_per_message(self, scenario: Scenario) -> int:
        return scenario.notices

    def held_count(self) -> int | None:
        """Holds in the SQLite hold store (read-only, beside the running gateway)."""
        assert self.data_dir is not None
        path = self.data_dir / HELD_DB
        if not path.exists():
            return 0
        with contextlib.closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as db:
            row = db.execute("SELECT count(*) FROM holds").fetchone()
        return int(row[0])
