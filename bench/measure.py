"""One measurement: a load against one target, with the target's CPU time and peak memory.

A message is *done* when the target has finished with it: relayed (the sink has the copy) or,
for the gateway, durably held (its 250 comes after the hold is committed). Throughput is
messages / (first message sent -> last message done). For the synchronous relays (bare, the
gateway) that is when the client has its last reply; Postfix answers at once and delivers
later, so for it the end is when the sink has the last copy.

The gateway's notices (two per hold) go to the same sink, asynchronously; they are counted
apart: how many arrived, and when the last one did. The wait for them ends when they are all
in, or when none has arrived for NOTICE_STALL seconds (a backlog the gateway is not draining),
so a run never waits on the gateway's sweep interval.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil

from bench.procstat import Machine, TreeMonitor, Usage
from bench.scenarios import SENDER, Scenario
from bench.sink import Sink
from bench.targets import Target
from bench.tools import LOOPBACK, ROOT, need

CLIENT_HELO = "client.school.test"
RELAY_TIMEOUT = 120.0  # the sink must have every relayed copy within this
NOTICE_STALL = 5.0  # stop waiting for notices when none arrived for this long
NOTICE_CAP = 60.0  # and never wait longer than this for them


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return round(ordered[rank - 1], 3)


def latency_figures(latencies: Sequence[float]) -> dict[str, Any]:
    return {
        "lat_n": len(latencies),
        "lat_p50_ms": percentile(latencies, 50),
        "lat_p99_ms": percentile(latencies, 99),
        "lat_max_ms": round(max(latencies), 3) if latencies else None,
    }


def run_driver(workdir: Path, spec: dict[str, Any], label: str) -> dict[str, Any]:
    spec_file = workdir / f"load-{label}.json"
    out_file = workdir / f"load-{label}.out.json"
    spec_file.write_text(json.dumps(spec))
    done = subprocess.run(
        [sys.executable, "-m", "bench.load", str(spec_file), str(out_file)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"load driver failed ({label}):\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out_file.read_text())
    return result


def smtp_source(
    ports: list[int], scenario: Scenario, figures: dict[str, Any]
) -> tuple[float, float]:
    """The scenario's load from smtp-source, split evenly over `ports` (one smtp-source per
    port, all at once: it talks to one server); when it began and when the last one ended."""
    k = len(ports)
    runs = []
    for i, port in enumerate(ports):
        count = scenario.count // k + (i < scenario.count % k)
        argv = [need("smtp-source"), "-d", "-s", str(max(1, scenario.sessions // k))]
        argv += ["-m", str(count), "-l", str(scenario.size), "-f", SENDER]
        argv += ["-t", scenario.recipients[0], "-S", scenario.subject, "-M", CLIENT_HELO]
        runs.append([*argv, f"{LOOPBACK}:{port}"])
    t0 = time.monotonic()
    procs = [
        subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for argv in runs
    ]
    outputs = [proc.communicate(timeout=900)[0].decode(errors="replace") for proc in procs]
    client_end = time.monotonic()
    tool = "smtp-source " + " ".join(runs[0][1:-1])
    figures["load_tool"] = tool if k == 1 else f"{k} x ({tool}), one to each node"
    figures["client_ok"] = all(proc.returncode == 0 for proc in procs)
    if not figures["client_ok"]:
        figures["client_error"] = "".join(outputs)[-500:]
    return t0, client_end


def db_figures(usage: Usage, n: int) -> dict[str, Any]:
    """The database server's share, counted apart from the gateway's processes."""
    return {
        "db_cpu_s": usage.cpu_s,
        "db_cpu_ms_per_msg": round(usage.cpu_s * 1000 / n, 3) if n else None,
        "db_peak_rss_mb": usage.peak_rss_mb,
        "db_processes": usage.processes,
    }


class Bench:
    def __init__(
        self,
        workdir: Path,
        sink: Sink,
        machine: Machine,
        rig_pids: Sequence[int] = (),
        tls_sink: Sink | None = None,
        client_ca: Path | None = None,
    ) -> None:
        self.workdir = workdir
        self.sinks = {"plain": sink, "tls": tls_sink or sink}
        self.sink = sink  # where the measured target's copies arrive (see use())
        self.machine = machine
        self.rig_pids = list(rig_pids)
        self.client_ca = client_ca  # the CA a STARTTLS client verifies the target with
        self.labels = 0

    def use(self, target: Target, scenario: Scenario) -> None:
        """Count at the sink where `target` puts `scenario`'s copies."""
        self.sink = self.sinks[target.sink_for(scenario)]

    def _label(self, target: Target, scenario: Scenario, phase: str) -> str:
        self.labels += 1
        return f"{self.labels:03d}-{scenario.name}-{target.name}-{phase}"

    def quiesce(self, target: Target, quiet: float = 0.5, timeout: float = 30.0) -> None:
        """Wait until the sink's count has not changed for `quiet` seconds."""
        deadline = time.monotonic() + timeout
        target.settle()
        last, since = self.sink.count, time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.05)
            count = self.sink.count
            if count != last:
                last, since = count, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return

    def wait_notices(self, expected_total: int) -> tuple[int, float]:
        """Wait for the sink to reach `expected_total`, giving up after NOTICE_STALL seconds
        without progress or NOTICE_CAP in all; the count reached and its time."""
        deadline = time.monotonic() + NOTICE_CAP
        while True:
            count, at = self.sink.wait_for(expected_total, NOTICE_STALL)
            if count >= expected_total or time.monotonic() > deadline:
                return count, at
            if time.monotonic() - at >= NOTICE_STALL:
                return count, at

    def driver(
        self,
        target: Target,
        scenario: Scenario,
        phase: str,
        messages: list[dict[str, Any]],
        concurrency: int,
        probe: dict[str, Any] | None = None,
        ports: list[int] | None = None,
    ) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "ports": ports or target.ports(),
            "concurrency": concurrency,
            "messages": messages,
            "probe": probe,
            "starttls": str(self.client_ca) if scenario.client_tls and self.client_ca else None,
        }
        return run_driver(self.workdir, spec, self._label(target, scenario, phase))

    def warmup(self, target: Target, scenario: Scenario) -> None:
        """One message to each recipient domain (fills the policy cache), then a few more so
        the first measured messages meet a process in its steady state. Few when the gateway
        holds them: their notices must all be sent before the measurement starts."""
        domains = sorted({r.split("@", 1)[1] for r in scenario.recipients})
        messages: list[dict[str, Any]] = [
            {"from": SENDER, "to": [f"warmup@{d}"], "subject": scenario.subject, "size": 2000}
            for d in domains
        ]
        self.driver(target, scenario, "warmup-domains", messages, 1)
        repeat = 5 if scenario.notices else 40
        messages = [
            {
                "from": SENDER,
                "to": list(scenario.recipients),
                "subject": scenario.subject,
                "size": min(scenario.size, 100_000),
                "repeat": repeat,
            }
        ]
        self.driver(target, scenario, "warmup", messages, 4)
        self.quiesce(target)

    def throughput(
        self, target: Target, scenario: Scenario, probe: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        quiet_before = self.machine.wait_quiet()
        before, tls_before = self.sink.count, self.sink.over_tls
        held_before = target.held_count() if scenario.expect == "held" else None
        monitor = TreeMonitor(target.pids())
        rig = TreeMonitor(self.rig_pids) if self.rig_pids else None
        db = TreeMonitor(target.db_pids()) if target.db_pids() else None
        monitor.start()
        if db is not None:
            db.start()
        if rig is not None:
            rig.start()
        machine0 = psutil.cpu_times()
        shared0 = self.machine.sample()
        figures: dict[str, Any] = {}
        if scenario.tool == "smtp-source":
            n = scenario.count
            t0, client_end = smtp_source(target.ports(), scenario, figures)
        else:
            result = self.driver(
                target, scenario, "throughput", scenario.load_messages(), scenario.sessions, probe
            )
            load = result["load"]
            n = len(load["latencies_ms"])
            if result.get("probe"):
                n_probe = len(result["probe"]["latencies_ms"])
                figures["probe_messages"] = n_probe
            t0 = result["t0"]
            client_end = t0 + result["wall_s"]
            figures["load_tool"] = f"bench/load.py: {scenario.sessions} sessions, {n} messages" + (
                ", plus one probe session" if probe else ""
            )
            figures["client_ok"] = not load["errors"]
            figures["replies"] = load["replies"]
            if load["errors"]:
                figures["client_error"] = load["errors"][:5]
            under_load = latency_figures(load["latencies_ms"])
            figures.update({f"load_{k}": v for k, v in under_load.items()})
            figures["driver"] = result
        extra = figures.get("probe_messages", 0)  # the probe's messages are relayed too
        relayed = (n + extra) * target.relayed_per_message(scenario)
        got, sink_at = self.sink.wait_for(before + relayed, RELAY_TIMEOUT)
        relayed_ok = got - before >= relayed
        if scenario.sink == "tls" and target.name != "sink":  # relayed: must be over TLS
            figures["relayed_over_tls"] = self.sink.over_tls - tls_before
        end = max(client_end, sink_at) if relayed else client_end
        notices = (n + extra) * target.notices_per_message(scenario)
        if notices:
            got, notice_at = self.wait_notices(before + relayed + notices)
            figures["notices_expected"] = notices
            figures["notices_received"] = max(0, got - before - relayed)
            figures["notices_last_s"] = round(notice_at - t0, 3)
        target.settle()
        usage = monitor.stop()
        if db is not None:
            figures.update(db_figures(db.stop(), n))
        machine1 = psutil.cpu_times()
        foreign = Machine.foreign_cores(shared0, self.machine.sample())
        busy = sum(machine1) - sum(machine0) - (machine1.idle - machine0.idle)
        busy -= machine1.iowait - machine0.iowait
        e2e = end - t0
        figures.update(
            {
                "messages": n,
                "relayed_expected": relayed,
                "complete": relayed_ok and figures["client_ok"],
                "accept_s": round(client_end - t0, 3),
                "e2e_s": round(e2e, 3),
                "msgs_per_s": round(n / e2e, 1) if relayed_ok and e2e > 0 else None,
                "cpu_s": usage.cpu_s,
                "cpu_ms_per_msg": round(usage.cpu_s * 1000 / n, 3) if n else None,
                "peak_rss_mb": (
                    max(usage.hwm_mb, usage.peak_rss_mb)
                    if target.single_process()
                    else usage.peak_rss_mb
                ),
                "processes": usage.processes,
                # CPU of the whole machine over the run, in cores busy (2 = saturated here):
                # the target, the load generator, the sink, the rig and anything else.
                "machine_busy_cores": round(busy / max(time.monotonic() - t0, 1e-9), 2),
                # The same as CPU seconds and the window they were counted over, so that the
                # load tools' share can be told apart (bench/goals.py, cpu_budget).
                "machine_cpu_s": round(busy, 3),
                "window_s": round(time.monotonic() - t0, 3),
                # Of which other processes than the bench's (a neighbour on a shared machine).
                "foreign_cores": round(foreign, 2),
                "foreign_cores_before": quiet_before,
            }
        )
        if rig is not None:
            figures["rig_cpu_s"] = rig.stop().cpu_s
        self.check_outcome(target, scenario, figures, before, held_before)
        return figures

    def check_outcome(
        self,
        target: Target,
        scenario: Scenario,
        figures: dict[str, Any],
        before: int,
        held_before: int | None,
    ) -> None:
        """Every hold in the store, every relayed copy at the sink exactly once."""
        n = figures["messages"]
        if held_before is not None:
            held_after = target.held_count()
            if held_after is not None:
                figures["held_in_store"] = held_after - held_before
                figures["held_ok"] = held_after - held_before == n
        if not target.notices_per_message(scenario):  # nothing else comes to the sink
            self.quiesce(target)
            figures["relayed_received"] = self.sink.count - before
            figures["exactly_once"] = figures["relayed_received"] == figures["relayed_expected"]
        elif "notices_received" in figures:  # no copy relayed, no notice twice
            figures["exactly_once"] = figures["notices_received"] <= figures["notices_expected"]

    def latency(self, target: Target, scenario: Scenario) -> dict[str, Any]:
        """One session, one message at a time: the time each message takes, without queueing."""
        quiet_before = self.machine.wait_quiet()
        shared0 = self.machine.sample()
        before = self.sink.count
        messages = [
            {
                "from": SENDER,
                "to": list(scenario.recipients),
                "subject": scenario.subject,
                "size": scenario.size,
                "tag": scenario.name,
                "repeat": scenario.latency_count,
            }
        ]
        load: dict[str, Any] = {"latencies_ms": [], "replies": {}, "errors": []}
        ports = target.ports()
        for i, port in enumerate(ports):  # one node after the other, one message at a time
            messages[0]["repeat"] = scenario.latency_count // len(ports) + (
                i < scenario.latency_count % len(ports)
            )
            part = self.driver(target, scenario, "latency", messages, 1, ports=[port])["load"]
            load["latencies_ms"] += part["latencies_ms"]
            load["errors"] += part["errors"]
            for kind, count in part["replies"].items():
                load["replies"][kind] = load["replies"].get(kind, 0) + count
        sent = len(load["latencies_ms"])
        self.sink.wait_for(before + sent * target.relayed_per_message(scenario), RELAY_TIMEOUT)
        if target.notices_per_message(scenario):
            self.wait_notices(
                before
                + sent
                * (target.relayed_per_message(scenario) + target.notices_per_message(scenario))
            )
        self.quiesce(target)
        figures = latency_figures(load["latencies_ms"])
        figures["latency_foreign_cores"] = round(
            Machine.foreign_cores(shared0, self.machine.sample()), 2
        )
        figures["latency_foreign_cores_before"] = quiet_before
        figures["latency_replies"] = load["replies"]
        figures["latency_tool"] = f"bench/load.py: 1 session, {scenario.latency_count} messages"
        if load["errors"]:
            figures["latency_errors"] = load["errors"][:5]
        return figures
