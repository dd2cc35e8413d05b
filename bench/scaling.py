"""How the gateway's throughput and cost scale (``make bench BENCH_ARGS=--scaling``).

Two tables, the gateway only, in the same invocation as the Postfix they are set beside:

* **workers**: throughput of flagged_secure_5k and unflagged_5k with ``[smtp] workers`` =
  1 .. cores, each beside the Postfix figure of the same scenario measured just before.
* **recipients per message**: CPU ms per message and msg/s for messages to 1, 5, 20 and 100
  recipients, all on secure domains (relayed: one copy to the smarthost) or all on insecure
  ones (held: one hold, its notices), with a least-squares line through CPU ms per message
  against the number of recipients. A straight line means each recipient costs the same; a
  cliff shows as rows far from the line.

Only throughput is measured here (no one-session latency run); each point is one run, with the
cores other processes used meanwhile ("other", as in the main table: a busy neighbour shows).
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from typing import Any

from bench.scenarios import FLAG, KB5, Scenario, by_name
from bench.targets import WORKERS, GatewayTarget, Target

RECIPIENT_COUNTS = (1, 5, 20, 100)
# Local parts repeat over a few domains of each kind (rig/zones.py): the per-domain work is
# memoised by the gateway, so the slope is the per-recipient cost.
SECURE_DOMAINS = ("secure.test", "multistring.test", "dane.test")
INSECURE_DOMAINS = ("nosts.test", "unlisted.test")
# Messages per point: fewer as each carries more recipients, so each point takes seconds.
MESSAGES = {1: 600, 5: 300, 20: 120, 100: 40}
SESSIONS = 10
WORKER_SCENARIOS = ("unflagged_5k", "flagged_secure_5k")

Measure = Callable[[Target, Scenario], dict[str, Any]]


def recipients(n: int, domains: tuple[str, ...]) -> tuple[str, ...]:
    """`n` distinct addresses dealt out over `domains` in turn."""
    return tuple(f"r{i:03d}@{domains[i % len(domains)]}" for i in range(n))


def recipient_scenario(n: int, secure: bool, scale: float) -> Scenario:
    kind = "secure" if secure else "insecure"
    return Scenario(
        f"rcpt{n}_{kind}",
        f"5 KB flagged to {n} recipient(s) on {kind} domains",
        recipients(n, SECURE_DOMAINS if secure else INSECURE_DOMAINS),
        FLAG,
        KB5,
        count=max(10, int(MESSAGES[n] * scale)),
        sessions=SESSIONS,
        tool="driver",
        latency_count=0,
        expect="relayed" if secure else "held",
        notices=0 if secure else 2,
        relayed=1 if secure else 0,
    )


def fit(points: list[tuple[float, float]]) -> tuple[float, float] | None:
    """Least-squares slope and intercept of y against x."""
    if len(points) < 2:
        return None
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx == 0:
        return None
    slope = sum((x - mx) * (y - my) for x, y in points) / sxx
    return round(slope, 4), round(my - slope * mx, 4)


def _row(label: str, fig: dict[str, Any]) -> dict[str, Any]:
    return {
        "label": label,
        "msgs_per_s": fig.get("msgs_per_s"),
        "cpu_ms_per_msg": fig.get("cpu_ms_per_msg"),
        "peak_rss_mb": fig.get("peak_rss_mb"),
        "foreign_cores": fig.get("foreign_cores"),
        "complete": bool(fig.get("complete")) and fig.get("held_ok") is not False,
        "error": fig.get("error"),
    }


def _safely(measure: Measure, target: Target, scenario: Scenario) -> dict[str, Any]:
    print(f"bench: scaling {scenario.name} / {target.name}", file=sys.stderr, flush=True)
    try:
        target.begin(scenario)
        return measure(target, scenario)
    except Exception as exc:  # one failed point must not lose the table
        return {"error": f"{type(exc).__name__}: {str(exc)[:500]}"}
    finally:
        target.end()


def run(
    make: Callable[[int], GatewayTarget],
    postfix: Target,
    measure: Measure,
    scale: float = 1.0,
    cores: int = WORKERS,
) -> dict[str, Any]:
    """`make(workers)` gives a gateway target; `measure` warms a begun target up and returns
    its throughput figures."""
    workers: list[dict[str, Any]] = []
    for scenario in by_name(list(WORKER_SCENARIOS)):
        if scale != 1.0:
            scenario = dataclasses.replace(scenario, count=max(20, int(scenario.count * scale)))
        reference = _safely(measure, postfix, scenario)
        for n in range(1, cores + 1):
            fig = _safely(measure, make(n), scenario)
            row = _row(f"workers={n}", fig)
            row.update(scenario=scenario.name, workers=n, postfix_msgs_per_s=None)
            row["postfix_msgs_per_s"] = reference.get("msgs_per_s")
            workers.append(row)
    per_rcpt: list[dict[str, Any]] = []
    for secure in (True, False):
        for n in RECIPIENT_COUNTS:
            scenario = recipient_scenario(n, secure, scale)
            row = _row(scenario.name, _safely(measure, make(cores), scenario))
            row.update(kind="relayed" if secure else "held", recipients=n)
            per_rcpt.append(row)
    lines = {
        kind: fit(
            [
                (r["recipients"], r["cpu_ms_per_msg"])
                for r in per_rcpt
                if r["kind"] == kind and r["cpu_ms_per_msg"] is not None
            ]
        )
        for kind in ("relayed", "held")
    }
    out = {"workers": workers, "recipients": per_rcpt, "fits": lines}
    out["text"] = text(out)
    return out


def _n(value: float | None, width: int, digits: int = 1) -> str:
    return ("-" if value is None else f"{value:.{digits}f}").rjust(width)


def text(scaling: dict[str, Any]) -> str:
    out = [
        "Scaling (the gateway only; one throughput run per point):",
        "  [smtp] workers (Postfix of the same invocation beside it):",
        f"   {'scenario':<18} {'workers':>7} {'msg/s':>8} {'x w=1':>6} {'Postfix':>8}"
        f" {'x Postfix':>9} {'CPU ms/msg':>10} {'RSS MB':>7} {'other':>6}  ok",
    ]
    first: dict[str, float | None] = {}
    for row in scaling["workers"]:
        first.setdefault(row["scenario"], row["msgs_per_s"])
        base = first[row["scenario"]]
        speedup = row["msgs_per_s"] / base if row["msgs_per_s"] and base else None
        pf = row["postfix_msgs_per_s"]
        versus = row["msgs_per_s"] / pf if row["msgs_per_s"] and pf else None
        out.append(
            f"   {row['scenario']:<18} {row['workers']:>7} {_n(row['msgs_per_s'], 8)}"
            f" {_n(speedup, 6, 2)} {_n(pf, 8)} {_n(versus, 9, 2)}"
            f" {_n(row['cpu_ms_per_msg'], 10, 3)} {_n(row['peak_rss_mb'], 7)}"
            f" {_n(row.get('foreign_cores'), 6, 2)}  {'yes' if row['complete'] else 'NO'}"
            + (f"  {row['error'][:120]}" if row.get("error") else "")
        )
    out.append("  recipients per message (5 KB flagged; relayed: secure domains, held: insecure):")
    out.append(
        f"   {'kind':<8} {'rcpts':>5} {'msg/s':>8} {'rcpt/s':>8} {'CPU ms/msg':>10}"
        f" {'ms/rcpt':>8} {'line':>8} {'off line':>8} {'other':>6}  ok"
    )
    for row in scaling["recipients"]:
        line = scaling["fits"].get(row["kind"])
        cpu = row["cpu_ms_per_msg"]
        on_line = line[0] * row["recipients"] + line[1] if line else None
        off = (cpu - on_line) / on_line * 100 if cpu is not None and on_line else None
        rate = row["msgs_per_s"]
        out.append(
            f"   {row['kind']:<8} {row['recipients']:>5} {_n(rate, 8)}"
            f" {_n(rate * row['recipients'] if rate else None, 8, 0)} {_n(cpu, 10, 3)}"
            f" {_n(cpu / row['recipients'] if cpu is not None else None, 8, 3)}"
            f" {_n(on_line, 8, 3)} {_n(off, 7, 0)}% {_n(row.get('foreign_cores'), 6, 2)}"
            f"  {'yes' if row['complete'] else 'NO'}"
            + (f"  {row['error'][:120]}" if row.get("error") else "")
        )
    for kind, line in scaling["fits"].items():
        if line:
            out.append(
                f"   {kind}: CPU ms/msg = {line[1]:.3f} + {line[0]:.4f} x recipients"
                f" (slope: {line[0] * 1000:.0f} us per recipient)"
            )
    return "\n".join(out)
