"""Where the gateway's time goes: py-spy samples the gateway process during a scenario's
throughput run (``make bench BENCH_ARGS=--profile``).

Each sample (the stack of the thread holding the GIL: where the interpreter's one core of CPU
goes; I/O waits and C code that releases the GIL are not sampled) is given to one
component: the frame nearest the leaf that belongs to a library or a gateway module we know,
so a json.dumps called by structlog counts as logging and a socket write made by aiosmtplib
counts as the relay client. The folded stacks are kept in bench/results/ for flame graphs
(flamegraph.pl or speedscope read them).
"""

from __future__ import annotations

import dataclasses
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.measure import Bench
from bench.scenarios import by_name
from bench.targets import GatewayTarget
from bench.tools import ROOT

# (scenario, phase): the throughput runs under load, and the one-session latency run of
# flagged mail (where nothing is shared between messages: the p99 target's case).
PROFILE_RUNS = [
    ("unflagged_5k", "throughput"),
    ("flagged_secure_5k", "throughput"),
    ("flagged_secure_5k", "latency"),
    ("unflagged_5k", "latency"),
    ("flagged_insecure_5k", "throughput"),
    ("large_1mb", "throughput"),
    ("flagged_direct_tls", "throughput"),
]
LARGE_COUNT = 200  # 1 MB messages in the profiled run (200 sessions, one message each)
RATE = 250  # samples per second

# (pattern on the frame's file, component), tried in order on each frame from the leaf up.
COMPONENTS: list[tuple[str, str]] = [
    ("/aiosmtpd/", "SMTP in (aiosmtpd)"),
    ("gateway/smtp_in.py", "SMTP in (aiosmtpd)"),
    ("/aiosmtplib/", "relay out (aiosmtplib)"),
    ("gateway/relay.py", "relay out (aiosmtplib)"),
    ("/dns/", "DNS lookups (dnspython)"),
    ("gateway/dns.py", "DNS lookups (dnspython)"),
    ("/structlog/", "logging (structlog JSON)"),
    ("gateway/logs.py", "logging (structlog JSON)"),
    ("gateway/stsdb.py", "policy cache (SQLite read + policy parse)"),
    ("gateway/store/crypto.py", "hold store (AES-GCM, fsync, SQLite)"),
    ("gateway/store/", "hold store (AES-GCM, fsync, SQLite)"),
    ("gateway/safeio.py", "hold store (AES-GCM, fsync, SQLite)"),
    ("/cryptography/", "hold store (AES-GCM, fsync, SQLite)"),
    ("/httpx/", "policy fetch (httpx)"),
    ("/httpcore/", "policy fetch (httpx)"),
    ("gateway/stsfetch.py", "policy fetch (httpx)"),
    ("gateway/notify.py", "notices"),
    ("gateway/review.py", "notices"),
    ("gateway/audit.py", "audit/report facts (JSON)"),
    ("gateway/report.py", "audit/report facts (JSON)"),
    ("gateway/core/classify.py", "classify (headers, body scan)"),
    ("gateway/core/headers.py", "classify (headers, body scan)"),
    ("/email/", "classify (headers, body scan)"),
    ("gateway/domaincheck.py", "posture (domain checks, policy decision)"),
    ("gateway/posture.py", "posture (domain checks, policy decision)"),
    ("gateway/core/", "posture (domain checks, policy decision)"),
    ("gateway/service.py", "filter (service.py own code)"),
    ("gateway/", "gateway, other"),
    ("/asyncio/", "asyncio event loop"),
    ("/concurrent/", "thread pool"),
    ("threading.py", "thread pool"),
]

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def _frames(stack: str) -> list[tuple[str, str]]:
    frames = []
    for raw in stack.split(";"):
        match = _FRAME.match(raw)
        if match is None:
            frames.append((raw, ""))
        else:
            frames.append((match["func"], match["file"]))
    return frames


def _short(path: str) -> str:
    for marker in ("site-packages/", "/lib/python3.11/", str(ROOT) + "/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def summarise(folded: Path, top: int = 15) -> dict[str, Any]:
    components: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in folded.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        frames = _frames(stack)
        while frames and frames[0][0].startswith(("thread ", "process ")):
            if frames[0][0].startswith("thread "):
                threads[frames[0][0].split(" (")[0] + " " + frames[0][0].rsplit(": ", 1)[-1]] += (
                    count
                )
            frames = frames[1:]
        total += count
        component = "other"
        for _func, file in reversed(frames):
            found = next((name for pattern, name in COMPONENTS if pattern in file), None)
            if found is not None:
                component = found
                break
        components[component] += count
        if frames:
            func, file = frames[-1]
            leaves[f"{func} ({_short(file)})"] += count
        seen = set()
        for func, file in frames:
            if "/gateway/" in file or file.startswith("gateway/"):
                key = f"{func} ({_short(file)})"
                if key not in seen:
                    seen.add(key)
                    inclusive[key] += count

    def share(counter: Counter[str], n: int) -> list[tuple[str, float]]:
        return [(k, round(100 * v / total, 1)) for k, v in counter.most_common(n)] if total else []

    return {
        "samples": total,
        "components": share(components, 30),
        "self": share(leaves, top),
        "gateway_inclusive": share(inclusive, top),
        "threads": share(threads, 10),
    }


def _text(name: str, fig: dict[str, Any], summary: dict[str, Any], folded: Path) -> str:
    if "msgs_per_s" in fig:
        during = f"{fig.get('msgs_per_s')} msg/s, {fig.get('cpu_ms_per_msg')} ms CPU per message"
    else:
        during = f"one session, p50 {fig.get('lat_p50_ms')} / p99 {fig.get('lat_p99_ms')} ms"
    lines = [
        f"-- profile {name}: {summary['samples']} samples at {RATE} Hz ({during}); "
        f"stacks: {folded.relative_to(ROOT)}",
        "   by component (% of CPU samples):",
    ]
    lines += [f"     {pct:5.1f}%  {k}" for k, pct in summary["components"]]
    lines.append("   hottest functions (self):")
    lines += [f"     {pct:5.1f}%  {k}" for k, pct in summary["self"][:12]]
    lines.append("   gateway functions (inclusive):")
    lines += [f"     {pct:5.1f}%  {k}" for k, pct in summary["gateway_inclusive"][:12]]
    if summary["threads"]:
        lines.append("   by thread: " + ", ".join(f"{k} {p}%" for k, p in summary["threads"]))
    return "\n".join(lines)


def run(bench: Bench, gateway: GatewayTarget, workdir: Path) -> dict[str, Any]:
    py_spy = str(Path(sys.executable).parent / "py-spy")
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out: dict[str, Any] = {"runs": {}, "text": ""}
    texts = ["Profile (py-spy --gil: separate runs; the figures above are from unprofiled runs):"]
    for name, phase in PROFILE_RUNS:
        scenario = by_name([name])[0]
        if scenario.name == "large_1mb":
            scenario = dataclasses.replace(scenario, count=LARGE_COUNT)
        label = f"{name}-{phase}"
        print(f"bench: profiling {label}", file=sys.stderr, flush=True)
        folded = ROOT / "bench" / "results" / f"{stamp}-profile-{label}.folded"
        gateway.begin(scenario)
        try:
            bench.warmup(gateway, scenario)
            spy = subprocess.Popen(
                [
                    *(py_spy, "record", "--pid", str(gateway.pids()[0]), "--rate", str(RATE)),
                    *("--format", "raw", "--output", str(folded)),
                    *("--nonblocking", "--threads", "--gil", "--subprocesses"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            time.sleep(1.0)  # attached
            if phase == "latency":
                fig = bench.latency(gateway, scenario)
            else:
                fig = bench.throughput(gateway, scenario)
            spy.send_signal(signal.SIGINT)
            _, err = spy.communicate(timeout=60)
        finally:
            gateway.end()
        if not folded.exists():
            texts.append(f"-- profile {label}: py-spy wrote nothing: {err[-300:]!r}")
            continue
        summary = summarise(folded)
        out["runs"][label] = {"figures": fig, "summary": summary}
        texts.append(_text(label, fig, summary, folded))
    out["text"] = "\n".join(texts)
    return out
