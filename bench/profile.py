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
from bench.scenarios import Scenario, by_name
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
    ("mixed_5rcpt", "throughput"),
    ("large_1mb", "throughput"),
    ("flagged_direct_tls", "throughput"),
    ("cold_start_200", "throughput"),
]
LARGE_COUNT = 200  # 1 MB messages in the profiled run (200 sessions, one message each)
RATE = 250  # samples per second

SMTP_IN = "SMTP in: gateway/smtp (session, DATA reader, parameters)"
DELIVERY = "delivery: smarthost, transport (gateway/delivery)"
DIRECT = "delivery: direct to the MX (delivery/mx, mxplan, peer)"
DNS = "DNS lookups (dnspython, posture/dns.py)"
FETCH = "MTA-STS policy fetch (httpx, posture/stsfetch.py)"
POLICY_CACHE = "policy cache (store/policycache.py, core/stscache.py)"
POSTURE = "posture: domain checks, allowlists, verdicts (gateway/posture)"
CORE = "core rules (gateway/core: policy, MTA-STS, DANE, addresses)"
CLASSIFY = "classify: headers, body keywords (core/classify.py, headers.py)"
CRYPTO = "store: AES-GCM (store/crypto.py, cryptography)"
STORE = "store: SQLite/PostgreSQL rows, files, fsync (gateway/store)"
LOGGING = "logging (structlog JSON, gateway/logs.py)"
LOOP = "asyncio event loop (uvloop: scheduling and socket I/O in C)"
ENTRY = "runtime, CLI"
EXECUTOR = "executor threads (the pool's own bookkeeping, results handed back)"

# Who a sample's CPU is for: (pattern on the frame's file, component), tried in order on each
# frame from the leaf up; the first frame that matches any pattern owns the sample. Files are
# matched with a leading "/" (py-spy names them "aiosmtpd/smtp.py" or by their full path).
COMPONENTS: list[tuple[str, str]] = [
    ("/aiosmtpd/", "SMTP in: aiosmtpd"),
    ("/gateway/smtp/", SMTP_IN),
    ("/aiosmtplib/", "relay out: aiosmtplib"),
    ("/gateway/delivery/queue.py", "delivery: the queue (delivery/queue.py)"),
    ("/gateway/delivery/mx", DIRECT),
    ("/gateway/delivery/peer.py", DIRECT),
    ("/gateway/delivery/", DELIVERY),
    ("/dns/", DNS),
    ("/gateway/posture/dns.py", DNS),
    ("/httpx/", FETCH),
    ("/httpcore/", FETCH),
    ("/h11/", FETCH),
    ("/gateway/posture/stsfetch.py", FETCH),
    ("/gateway/posture/fetchlock.py", FETCH),
    ("/gateway/store/policycache.py", POLICY_CACHE),
    ("/gateway/store/postgres/policycache.py", POLICY_CACHE),
    ("/gateway/core/stscache.py", POLICY_CACHE),
    ("/gateway/posture/", POSTURE),
    ("/gateway/core/classify.py", CLASSIFY),
    ("/gateway/core/headers.py", CLASSIFY),
    ("/gateway/core/", CORE),
    ("/gateway/review/notices.py", "notices: rendering (review/notices.py)"),
    ("/gateway/review/linknotices.py", "notices: rendering (review/notices.py)"),
    ("/gateway/review/outbox.py", "notices: the outbox, sending (review/outbox.py)"),
    ("/gateway/review/", "review model (gateway/review)"),
    ("/gateway/store/crypto.py", CRYPTO),
    ("/cryptography/", CRYPTO),
    ("/gateway/store/", STORE),
    ("/psycopg/", STORE),
    ("/psycopg_pool/", STORE),
    ("/gateway/audit/", "audit trail facts (gateway/audit)"),
    ("/gateway/filter/", "filter: orchestrator, holding, replies (gateway/filter)"),
    ("/structlog/", LOGGING),
    ("/gateway/logs.py", LOGGING),
    ("/gateway/metrics.py", "metrics"),
    ("/gateway/cli/", ENTRY),
    ("/gateway/runtime/", ENTRY),
    ("/gateway/config/", ENTRY),
    ("/gateway/__main__.py", ENTRY),
    ("/gateway/", "gateway, other"),
]
# Owners only when nothing above claims the sample (a thread pool's own bookkeeping).
FALLBACKS: list[tuple[str, str]] = [("/concurrent/", EXECUTOR), ("/threading.py", EXECUTOR)]

# What, under its owner, the sample was doing in the standard library (nearest the leaf):
# the "of which" column, and a total per kind across owners.
DETAILS: list[tuple[str, str]] = [
    ("/asyncio/streams.py", "asyncio streams"),
    ("/asyncio/selector_events.py", "asyncio streams"),
    ("/asyncio/sslproto.py", "TLS (ssl)"),
    ("/ssl.py", "TLS (ssl)"),
    ("/asyncio/tasks.py", "asyncio tasks, locks, futures"),
    ("/asyncio/locks.py", "asyncio tasks, locks, futures"),
    ("/asyncio/futures.py", "asyncio tasks, locks, futures"),
    ("/asyncio/queues.py", "asyncio tasks, locks, futures"),
    ("/asyncio/base_events.py", "executor hand-off (run_in_executor)"),
    ("/concurrent/futures/", "executor hand-off (run_in_executor)"),
    ("/email/", "email package"),
    ("/json/", "json"),
    ("/sqlite3/", "sqlite3"),
    ("/re/", "re"),
]
# A sample owned only by the entry point (gateway/cli, gateway/runtime) with an asyncio frame
# below it is the event loop's own time (uvloop runs callbacks and socket I/O in C, under
# Runner.run).
LOOP_FILES = ("/asyncio/runners.py", "/asyncio/base_events.py", "/asyncio/events.py", "/uvloop/")


def _match(file: str, table: list[tuple[str, str]]) -> str | None:
    path = file if file.startswith("/") else "/" + file
    return next((name for pattern, name in table if pattern in path), None)


def attribute(frames: list[tuple[str, str]]) -> tuple[str, str | None]:
    """The component owning a sample (root-first `frames`), and what it was doing in the
    standard library below its own frame, if anything."""
    owner, at = "other", -1
    for table in (COMPONENTS, FALLBACKS):
        for i in range(len(frames) - 1, -1, -1):
            found = _match(frames[i][1], table)
            if found is not None:
                owner, at = found, i
                break
        if at >= 0:
            break
    below = frames[at + 1 :] if at >= 0 else frames
    if owner == ENTRY and any(_match(f, [(p, LOOP) for p in LOOP_FILES]) for _, f in below):
        owner = LOOP
    detail = None
    for _func, file in reversed(below):
        detail = _match(file, DETAILS)
        if detail is not None:
            break
    return owner, detail


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
    details: Counter[tuple[str, str]] = Counter()
    stdlib: Counter[str] = Counter()
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
        component, detail = attribute(frames)
        components[component] += count
        if detail is not None:
            details[(component, detail)] += count
            stdlib[detail] += count
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

    def of_which(component: str) -> list[tuple[str, float]]:
        parts = Counter({d: n for (c, d), n in details.items() if c == component})
        return share(parts, 4)

    return {
        "samples": total,
        "components": share(components, 40),
        "of_which": {c: of_which(c) for c, _ in components.most_common(40)},
        "stdlib": share(stdlib, 10),
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
    for k, pct in summary["components"]:
        parts = summary.get("of_which", {}).get(k) or []
        under = ", ".join(f"{d} {p}%" for d, p in parts)
        lines.append(f"     {pct:5.1f}%  {k}" + (f"  (of which {under})" if under else ""))
    if summary.get("stdlib"):
        lines.append(
            "   in the standard library, under any owner: "
            + ", ".join(f"{k} {p}%" for k, p in summary["stdlib"])
        )
    lines.append("   hottest functions (self):")
    lines += [f"     {pct:5.1f}%  {k}" for k, pct in summary["self"][:12]]
    lines.append("   gateway functions (inclusive):")
    lines += [f"     {pct:5.1f}%  {k}" for k, pct in summary["gateway_inclusive"][:12]]
    if summary["threads"]:
        lines.append("   by thread: " + ", ".join(f"{k} {p}%" for k, p in summary["threads"]))
    return "\n".join(lines)


def run(
    bench: Bench, gateway: GatewayTarget, workdir: Path, scenarios: list[Scenario] | None = None
) -> dict[str, Any]:
    """Profile the PROFILE_RUNS whose scenario is in `scenarios` (the run's, as --scenarios and
    --scale made them; None: all, at full counts)."""
    chosen = {s.name: s for s in scenarios} if scenarios is not None else None
    py_spy = str(Path(sys.executable).parent / "py-spy")
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out: dict[str, Any] = {"runs": {}, "text": ""}
    texts = ["Profile (py-spy --gil: separate runs; the figures above are from unprofiled runs):"]
    for name, phase in PROFILE_RUNS:
        if chosen is not None and name not in chosen:
            continue
        scenario = chosen[name] if chosen is not None else by_name([name])[0]
        if scenario.name == "large_1mb":
            scenario = dataclasses.replace(scenario, count=min(LARGE_COUNT, scenario.count))
        label = f"{name}-{phase}"
        print(f"bench: profiling {label}", file=sys.stderr, flush=True)
        folded = ROOT / "bench" / "results" / f"{stamp}-profile-{label}.folded"
        gateway.begin(scenario)
        try:
            bench.use(gateway, scenario)  # the direct scenario's copies arrive at the TLS sink
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
