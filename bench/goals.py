"""The issue's targets, checked against the figures of one run, in the issue's words.

Each check is a number (`metric`), a comparison (`op`, `threshold`) and a verdict, so that a
summary of several runs (bench/summary.py) can compare the *median* of the number with the
same threshold: a target passes only when its median does. A check whose `op` is None is
reported beside its reference and has no target (CPU per message against Postfix's).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "<": operator.lt,
}

# The scenarios whose CPU per message is reported beside Postfix's (no target).
CPU_SCENARIOS = (
    "unflagged_5k",
    "flagged_secure_5k",
    "flagged_insecure_5k",
    "mixed_5rcpt",
    "large_1mb",
    "cold_start_200",
    "flagged_direct_tls",
    "tls_in",
)


def verdict(metric: float | None, op: str | None, threshold: float | None) -> bool | None:
    """PASS/FAIL of `metric` against the target; None when unmeasured or without a target."""
    if metric is None or op is None or threshold is None:
        return None
    return OPS[op](metric, threshold)


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 3)


def _diff(a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return None
    return round(a - b, 3)


def figure(results: dict[str, Any], scenario: str, target: str) -> dict[str, Any]:
    for s in results["scenarios"]:
        if s["name"] == scenario:
            fig: dict[str, Any] = s["targets"].get(target, {})
            return fig
    return {}


def measured(results: dict[str, Any], scenario: str) -> bool:
    return any(s["name"] == scenario for s in results["scenarios"])


def cold_of(results: dict[str, Any]) -> dict[str, Any]:
    for s in results["scenarios"]:
        if s.get("cold"):
            cold: dict[str, Any] = s["cold"]
            return cold
    return {}


class _Checks:
    def __init__(self, results: dict[str, Any]) -> None:
        self.results = results
        self.out: list[dict[str, Any]] = []

    def add(
        self,
        key: str,
        target: str,
        scenario: str,
        metric: float | None,
        value: str,
        op: str | None,
        threshold: float | None,
        unit: str,
        note: str = "",
    ) -> None:
        if not measured(self.results, scenario):
            return  # the scenario was not part of this run (--scenarios)
        check = {
            "id": key,
            "target": target,
            "scenario": scenario,
            "metric": metric,
            "unit": unit,
            "op": op,
            "threshold": threshold,
            "value": value,
            # `ratio` is the metric under its older name (JSON of earlier runs).
            "ratio": metric,
            "pass": verdict(metric, op, threshold),
        }
        if note:
            check["note"] = note
        self.out.append(check)

    def versus_postfix(self, key: str, label: str, scenario: str, factor: float) -> None:
        gw = figure(self.results, scenario, "gateway").get("msgs_per_s")
        pf = figure(self.results, scenario, "postfix").get("msgs_per_s")
        times = _ratio(gw, pf)
        value = f"{gw} vs {pf} msg/s = {times}x"
        self.add(key, f"{label} >= {factor}x Postfix", scenario, times, value, ">=", factor, "x")


def cold_best_ratio(results: dict[str, Any]) -> tuple[float | None, float | None]:
    """The best msg/s the cold start can show by design, and that as a ratio to Postfix.

    Four policy hosts answer only after SLOW_DELAY seconds, and the messages to their domains
    cannot be relayed before the policy is in, so the run lasts at least that long: no gateway
    can do better than messages / SLOW_DELAY."""
    cold = cold_of(results)
    fig = figure(results, "cold_start_200", "gateway")
    n = fig.get("messages")
    delay = cold.get("slow_delay_s")
    if not n or not delay:
        return None, None
    best = round(n / delay, 1)
    return best, _ratio(best, figure(results, "cold_start_200", "postfix").get("msgs_per_s"))


def check(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target of the issue that this run measured, in the issue's order."""
    c = _Checks(results)
    c.versus_postfix("unflagged", "unflagged", "unflagged_5k", 2.0)
    c.versus_postfix("flagged_secure", "flagged->secure relayed", "flagged_secure_5k", 1.5)
    c.versus_postfix("flagged_insecure", "flagged->insecure held", "flagged_insecure_5k", 1.0)
    c.versus_postfix("mixed", "5 mixed recipients", "mixed_5rcpt", 1.0)
    c.versus_postfix("large", "1 MB x 200 sessions", "large_1mb", 1.0)
    rss = figure(results, "large_1mb", "gateway").get("peak_rss_mb")
    c.add(
        "large_rss",
        "1 MB x 200 sessions: peak RSS < 200 MB (all workers)",
        "large_1mb",
        rss,
        f"{rss} MB",
        "<",
        200.0,
        "MB",
    )
    _cold_throughput(c)
    for key, scenario, label in (
        ("p99_flagged", "flagged_secure_5k", "flagged"),
        ("p99_unflagged", "unflagged_5k", "unflagged"),
    ):
        gw = figure(results, scenario, "gateway").get("lat_p99_ms")
        bare = figure(results, scenario, "bare").get("lat_p99_ms")
        added = _diff(gw, bare)
        c.add(
            key,
            f"p99 added over the bare relay, {label}, warm <= 5 ms",
            scenario,
            added,
            f"{gw} - {bare} = {added} ms",
            "<=",
            5.0,
            "ms",
        )
    c.versus_postfix(
        "direct_tls",
        "flagged delivered directly over TLS (vs Postfix to the same MX over TLS)",
        "flagged_direct_tls",
        1.0,
    )
    _tls_in(c)
    _cold_checks(c)
    for scenario in CPU_SCENARIOS:
        gw = figure(results, scenario, "gateway").get("cpu_ms_per_msg")
        pf = figure(results, scenario, "postfix").get("cpu_ms_per_msg")
        times = _ratio(gw, pf)
        c.add(
            f"cpu_{scenario}",
            "CPU per message beside Postfix's (reported, no target)",
            scenario,
            times,
            f"{gw} vs {pf} ms/msg = {times}x",
            None,
            None,
            "x",
        )
    return c.out


def _cold_throughput(c: _Checks) -> None:
    gw = figure(c.results, "cold_start_200", "gateway").get("msgs_per_s")
    pf = figure(c.results, "cold_start_200", "postfix").get("msgs_per_s")
    times = _ratio(gw, pf)
    best, best_ratio = cold_best_ratio(c.results)
    note = ""
    if best is not None:
        note = (
            f"best possible by design: {figure(c.results, 'cold_start_200', 'gateway')['messages']}"
            f" messages / {cold_of(c.results)['slow_delay_s']} s (the slow policy hosts) ="
            f" {best} msg/s = {best_ratio}x this run's Postfix"
        )
    c.add(
        "cold",
        "cold start 200 domains >= 0.5x Postfix",
        "cold_start_200",
        times,
        f"{gw} vs {pf} msg/s = {times}x",
        ">=",
        0.5,
        "x",
        note,
    )


def _tls_in(c: _Checks) -> None:
    """TLS on the way in costs at most 20% of throughput: the gateway's own ratio, tls_in
    against plain_in (the same mail from the same client, in the clear), both from this run."""
    if not measured(c.results, "plain_in"):
        return
    tls = figure(c.results, "tls_in", "gateway").get("msgs_per_s")
    plain = figure(c.results, "plain_in", "gateway").get("msgs_per_s")
    times = _ratio(tls, plain)
    c.add(
        "tls_in",
        "TLS on the way in costs at most 20% of throughput (gateway tls_in / plain_in)",
        "tls_in",
        times,
        f"{tls} vs {plain} msg/s = {times}x",
        ">=",
        0.8,
        "x",
    )


def _cold_checks(c: _Checks) -> None:
    cold = cold_of(c.results)
    if not cold:
        return
    c.add(
        "cold_once",
        "cold start: each domain's policy fetched exactly once",
        "cold_start_200",
        cold["fetched_exactly_once"],
        f"{cold['fetched_exactly_once']}/{cold['domains']} once, {cold['never_fetched']} never,"
        f" {len(cold['fetched_more_than_once'])} more than once",
        ">=",
        cold["domains"],
        "domains",
    )
    c.add(
        "cold_bounded",
        f"cold start: bounded fetch concurrency (<= {cold['fetch_bound']})",
        "cold_start_200",
        cold["max_fetches_in_flight"],
        f"at most {cold['max_fetches_in_flight']} fetches in flight",
        "<=",
        cold["fetch_bound"],
        "fetches",
    )
    slowest = max(cold["fast_domain_lat_max_ms"] or 0.0, cold["probe"].get("lat_max_ms") or 0.0)
    c.add(
        "cold_no_waiting",
        "cold start: no message waits on another domain's lookup",
        "cold_start_200",
        slowest if cold["fast_domain_lat_max_ms"] is not None else None,
        f"fast-domain max {cold['fast_domain_lat_max_ms']} ms, warm probe max "
        f"{cold['probe'].get('lat_max_ms')} ms, vs slow policy hosts' "
        f"{cold['slow_delay_s'] * 1000:.0f} ms",
        "<",
        cold["slow_delay_s"] * 1000,
        "ms",
    )


def cpu_budget(results: dict[str, Any], factor: float = 2.0) -> dict[str, Any] | None:
    """What `factor` x Postfix's unflagged throughput demands of the gateway's CPU per message
    on this machine, where the load tools (smtp-source, smtp-sink) share the cores with it.

    At factor x Postfix msg/s the whole machine has cores x 1000 / rate ms of CPU per message;
    smtp-source, smtp-sink and the rig take their share of that (measured in the gateway's own
    run: the machine's CPU over the run less the gateway's and less what processes outside
    the bench used); the rest is the gateway's."""
    gw = figure(results, "unflagged_5k", "gateway")
    pf = figure(results, "unflagged_5k", "postfix").get("msgs_per_s")
    cores = results.get("meta", {}).get("machine", {}).get("cores")
    n = gw.get("messages")
    if not pf or not cores or not n or gw.get("cpu_s") is None or "machine_cpu_s" not in gw:
        return None
    rate = factor * pf
    machine_ms = cores * 1000 / rate
    foreign_s = (gw.get("foreign_cores") or 0.0) * gw.get("window_s", 0.0)
    tools_s = gw["machine_cpu_s"] - foreign_s - gw["cpu_s"]
    tools_ms = max(0.0, tools_s * 1000 / n)
    return {
        "factor": factor,
        "cores": cores,
        "postfix_msgs_per_s": pf,
        "needed_msgs_per_s": round(rate, 1),
        "machine_ms_per_msg": round(machine_ms, 3),
        "tools_ms_per_msg": round(tools_ms, 3),
        "gateway_budget_ms_per_msg": round(machine_ms - tools_ms, 3),
        "gateway_ms_per_msg": gw["cpu_ms_per_msg"],
    }
