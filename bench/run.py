"""`make bench`: start everything on loopback, run every scenario against every target, report.

    python -m bench [--scenarios a,b] [--targets sink,bare,postfix,gateway,gateway-2pg]
                    [--scale F] [--runs N] [--profile] [--variants] [--scaling] [--keep]

Order of a run: install what is missing (bench/deps.py); start the rig (knot, unbound, nginx)
with the zone table plus the bench's 200 cold-start domains; start smtp-sink, a private
Postfix instance relaying to it, and the fetch watcher in front of nginx; then for each
scenario and each target: (re)start the target, warm it up, measure throughput (with CPU and
peak RSS) and latency, stop it. Finally the targets of the issue are checked (bench/goals.py),
a table goes to stdout and the JSON to bench/results/<timestamp>.json. With --runs N the set is
run N times over the same rig and Postfix, each run with its own JSON, and then the summary of
the medians (bench/summary.py); --profile, --variants and --scaling run once, after the last.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import deps
from bench.load import TLS_NAME
from bench.tools import ROOT, need


def _machine() -> dict[str, Any]:
    import psutil

    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "kernel": platform.release(),
        "os": _os_name(),
        "python": platform.python_version(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "disk": "data dirs under " + tempfile.gettempdir(),
    }


def _os_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    return platform.system()


def _versions() -> dict[str, str]:
    versions = {}
    for package in ("aiosmtpd", "aiosmtplib", "dnspython", "httpx", "structlog", "psutil"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[package] = metadata.version(package)
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(
            [need("postconf"), "-d", "-h", "mail_version"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        versions["postfix"] = done.stdout.strip()
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        rev = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "gateway"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stdout.strip()
        versions["gateway"] = rev + (f" + uncommitted gateway/ {_tree_hash()}" if dirty else "")
    return versions


def _tree_hash() -> str:
    """A short digest of gateway/*.py as it is on disk, to tell two dirty trees apart."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted((ROOT / "gateway").rglob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="make bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", default="", help="comma-separated (default: all)")
    parser.add_argument(
        "--targets",
        default="sink,bare,postfix,gateway,gateway-2pg",
        help="comma-separated targets (gateway-2pg: two nodes on PostgreSQL, in the flagged"
        " held and relayed scenarios only)",
    )
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiply message counts (not the cold start)"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="then profile the gateway with py-spy in the main scenarios",
    )
    parser.add_argument(
        "--variants",
        action="store_true",
        help="then run experimental gateway variants (bench/variant.py) for the report",
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=1,
        help="run the whole set N times, then a summary of the medians (bench/results/summary-*)",
    )
    parser.add_argument(
        "--scaling",
        action="store_true",
        help="then the scaling tables: [smtp] workers 1..cores, and 1/5/20/100 recipients",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    deps.ensure()

    from bench import experiments, profile, report, scaling, summary, zones
    from bench.measure import Bench
    from bench.pgnodes import GatewayNodes
    from bench.postfix import Postfix, PostfixTls
    from bench.procstat import Machine
    from bench.scenarios import SLOW_DELAY, by_name
    from bench.sink import Sink, TlsSink
    from bench.targets import (
        BareTarget,
        GatewayTarget,
        GatewayTls,
        PostfixTarget,
        SinkTarget,
        Target,
    )
    from bench.tools import free_port
    from rig.rig import start_rig

    scenarios = by_name([s for s in args.scenarios.split(",") if s])
    if args.scale != 1.0:
        scenarios = [
            dataclasses.replace(
                s,
                count=s.count if s.cold else max(20, int(s.count * args.scale)),
                latency_count=max(20, int(s.latency_count * args.scale)) if s.latency_count else 0,
            )
            for s in scenarios
        ]
    wanted = [t for t in args.targets.split(",") if t]
    workdir = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    workdir.chmod(0o755)  # Postfix's daemons run as postfix and must reach their queue
    print(f"bench: work directory {workdir}", file=sys.stderr, flush=True)
    runs: list[dict[str, Any]] = []
    paths: list[Path] = []
    with contextlib.ExitStack() as stack:
        # SIGTERM (e.g. from make's parent) unwinds the stack like Ctrl-C does.
        signal.signal(signal.SIGTERM, _interrupt)
        if not args.keep:
            stack.callback(subprocess.run, ["rm", "-rf", str(workdir)], check=False)
        rig = start_rig(workdir / "rig", rows=zones.rows())
        stack.callback(rig.stop)
        sink = Sink().start()
        stack.callback(sink.stop)
        postfix = Postfix(workdir / "postfix", sink.port).start()
        stack.callback(postfix.stop)
        # The TLS scenarios: a sink with STARTTLS on the direct domain's MX address, and a
        # Postfix with smtpd TLS that delivers to it over verified TLS.
        sink_leaf = rig.ca.issue((zones.DIRECT_MX, TLS_NAME), stem="bench-tls-sink")
        tls_sink = TlsSink(*_chain(sink_leaf, rig.ca_file), zones.DIRECT_ADDRESS).start()
        stack.callback(tls_sink.stop)
        cert, key = _chain(rig.ca.issue((TLS_NAME,), stem="bench-gateway"), rig.ca_file)
        mx = (zones.DIRECT_DOMAIN, zones.DIRECT_MX, zones.DIRECT_ADDRESS, tls_sink.port)
        tls_postfix = Postfix(
            workdir / "postfix-tls", sink.port, PostfixTls(cert, key, rig.ca_file, *mx)
        ).start()
        stack.callback(tls_postfix.stop)
        gateway_tls = GatewayTls(cert, key, tls_sink.port)
        events = workdir / "fetches.jsonl"
        events.touch()
        fetch_port = free_port()
        slow_hosts = [f"mta-sts.{d}" for d in zones.slow_domains()]
        watcher = subprocess.Popen(
            [
                *(sys.executable, "-m", "bench.fetchwatch", str(fetch_port)),
                *(str(rig.https_port), str(events), str(SLOW_DELAY), *slow_hosts),
            ],
            cwd=ROOT,
        )
        stack.callback(_terminate, watcher)
        all_targets: dict[str, Target] = {
            "sink": SinkTarget(sink, tls_sink),
            "bare": BareTarget(workdir, sink.port),
            "postfix": PostfixTarget(postfix, tls_postfix),
            "gateway": GatewayTarget(workdir, rig, sink.port, fetch_port, tls=gateway_tls),
            "gateway-2pg": GatewayNodes(workdir, rig, sink.port, fetch_port),
        }
        for target in all_targets.values():
            stack.callback(target.stop)
        servers = (rig.knot, rig.unbound, rig.nginx)
        rig_pids = [s.process.pid for s in servers if s is not None and s.process.pid]
        machine = Machine([postfix.master_pid, tls_postfix.master_pid])
        bench = Bench(workdir, sink, machine, rig_pids, tls_sink, rig.ca_file)
        for number in range(1, args.runs + 1):
            if args.runs > 1:
                print(f"bench: run {number} of {args.runs}", file=sys.stderr, flush=True)
            began = time.monotonic()
            results = _new_results(wanted, number, args.runs)
            for scenario in scenarios:
                results["scenarios"].append(_scenario(bench, all_targets, wanted, scenario, events))
            results["targets"] = report.check_targets(results)
            last = number == args.runs
            if last and args.profile and "gateway" in wanted and "sink" in wanted:
                gateway = all_targets["gateway"]
                assert isinstance(gateway, GatewayTarget)
                results["profile"] = profile.run(bench, gateway, workdir, scenarios)
            if last and args.variants and "gateway" in wanted and "sink" in wanted:
                results["experiments"] = experiments.run(
                    results,
                    lambda v, n: GatewayTarget(workdir, rig, sink.port, fetch_port, v, n),
                    lambda target, scenario: _measure(bench, target, scenario, events, None),
                )
            if last and args.scaling:
                results["scaling"] = scaling.run(
                    lambda n: GatewayTarget(workdir, rig, sink.port, fetch_port, workers=n),
                    all_targets["postfix"],
                    lambda target, scenario: _throughput(bench, target, scenario),
                    args.scale,
                )
            results["meta"]["duration_s"] = round(time.monotonic() - began, 1)
            # The gateway is developed while benchmarks run: say so if it changed under this run.
            results["meta"]["gateway_at_end"] = _versions().get("gateway")
            print(report.table(results), flush=True)
            path = report.write_json(results, ROOT / "bench" / "results")
            print(f"\nJSON: {path.relative_to(ROOT)}  ({results['meta']['duration_s']} s)")
            runs.append(results)
            paths.append(path)
    if args.runs > 1:
        written = summary.write(summary.summarise(runs, paths), ROOT / "bench" / "results")
        print("\n" + written["text"])
        print(f"\nSummary: {written['json'].relative_to(ROOT)}, {written['md'].relative_to(ROOT)}")
    return 0


def _new_results(wanted: list[str], number: int, total: int) -> dict[str, Any]:
    from bench import report

    started = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "meta": {
            "started": started,
            "command": "make bench" + (f" ({' '.join(sys.argv[1:])})" if sys.argv[1:] else ""),
            "run": number,
            "runs": total,
            "machine": _machine(),
            "versions": _versions(),
            "targets": {t: report.DESCRIPTIONS[t] for t in wanted},
        },
        "scenarios": [],
    }


def _scenario(
    bench: Any, targets: dict[str, Any], wanted: list[str], scenario: Any, events: Path
) -> dict[str, Any]:
    """Every wanted target in one scenario, with the ratios between them."""
    from bench import report

    entry: dict[str, Any] = {
        "name": scenario.name,
        "title": scenario.title,
        "cold": None,
        "targets": {},
    }
    for name in wanted:
        target = targets[name]
        if not target.takes_part(scenario):
            continue
        print(f"bench: {scenario.name} / {name}", file=sys.stderr, flush=True)
        try:
            target.begin(scenario)
            bench.use(target, scenario)
            figures, entry["cold"] = _measure(bench, target, scenario, events, entry["cold"])
        except Exception as exc:  # one failed measurement must not lose the run
            print(f"bench: {scenario.name} / {name} failed: {exc}", file=sys.stderr)
            figures = {"error": f"{type(exc).__name__}: {str(exc)[:1000]}"}
        finally:
            target.end()
        entry["targets"][name] = figures
    report.add_ratios(entry)
    return entry


def _throughput(bench: Any, target: Any, scenario: Any) -> dict[str, Any]:
    """Warm up and measure throughput only (the scaling tables), for a begun target."""
    bench.use(target, scenario)
    bench.warmup(target, scenario)
    figures: dict[str, Any] = bench.throughput(target, scenario)
    figures.pop("driver", None)
    return figures


def _measure(
    bench: Any, target: Any, scenario: Any, events: Path, cold_result: Any
) -> tuple[dict[str, Any], Any]:
    """Warm up, latency, throughput for one target in one scenario (begun already)."""
    from bench import cold
    from bench.scenarios import FLAG, KB5, SENDER

    probe = None
    offset = 0
    if scenario.warm:
        bench.warmup(target, scenario)
    latency = bench.latency(target, scenario) if scenario.latency_count else {}
    if scenario.cold:
        message = {"from": SENDER, "subject": FLAG, "size": KB5}
        probe = {**message, "to": ["colleague@secure.test"], "interval": 0.05}
        warm = [{**message, "to": ["colleague@secure.test"]}]
        bench.driver(target, scenario, "warm-probe-domain", warm, 1)
        bench.quiesce(target)
        offset = events.stat().st_size
    figures: dict[str, Any] = bench.throughput(target, scenario, probe)
    figures.update(latency)
    if not scenario.latency_count:  # the cold start: latency under its load
        for key in ("lat_n", "lat_p50_ms", "lat_p99_ms", "lat_max_ms"):
            figures[key] = figures.get(f"load_{key}")
    driver = figures.pop("driver", None)
    if scenario.cold and target.name.startswith("gateway") and driver is not None:
        cold_result = cold.analyse(cold.read_events(events, offset), driver)
    return figures, cold_result


def _chain(leaf: Any, ca_file: Path) -> tuple[Path, Path]:
    """`leaf`'s certificate followed by the CA's (the chain a server presents), and its key."""
    chain = leaf.cert_file.with_name(leaf.cert_file.name + ".chain.pem")
    chain.write_bytes(leaf.cert_file.read_bytes() + ca_file.read_bytes())
    return chain, leaf.key_file


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
