"""The report: ratios to each baseline, the issue's targets, a table on stdout, JSON on disk."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench import goals

BASELINES = ("sink", "bare", "postfix")
TARGET_ORDER = ("sink", "bare", "postfix", "gateway", "gateway-2pg")
# Compared with a baseline of its own as well: two nodes on PostgreSQL against one on SQLite.
ALSO_AGAINST = {"gateway-2pg": "gateway"}
DESCRIPTIONS = {
    "sink": "smtp-sink direct: the ceiling of this machine and tool",
    "bare": "bare aiosmtpd -> aiosmtplib relay, no checks: the framework's floor",
    "postfix": "Postfix relaying to the same sink: what users run today",
    "gateway": "the gateway, every check on",
    "gateway-2pg": "two gateway nodes (one worker each) on one PostgreSQL database, the load"
    " split evenly over them",
}


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 3)


def diff(a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return None
    return round(a - b, 3)


def add_ratios(scenario: dict[str, Any]) -> None:
    targets = scenario["targets"]
    sink = targets.get("sink", {})
    for name, fig in targets.items():
        fig["lat_added_p50_ms"] = diff(fig.get("lat_p50_ms"), sink.get("lat_p50_ms"))
        fig["lat_added_p99_ms"] = diff(fig.get("lat_p99_ms"), sink.get("lat_p99_ms"))
        ratios: dict[str, dict[str, float | None]] = {}
        for base in (*BASELINES, *ALSO_AGAINST.get(name, "").split()):
            if base == name or base not in targets:
                continue
            b = targets[base]
            ratios[base] = {
                "msgs_per_s": ratio(fig.get("msgs_per_s"), b.get("msgs_per_s")),
                "lat_p50": ratio(fig.get("lat_p50_ms"), b.get("lat_p50_ms")),
                "lat_p99": ratio(fig.get("lat_p99_ms"), b.get("lat_p99_ms")),
                "lat_p50_added_ms": diff(fig.get("lat_p50_ms"), b.get("lat_p50_ms")),
                "lat_p99_added_ms": diff(fig.get("lat_p99_ms"), b.get("lat_p99_ms")),
                "cpu_ms_per_msg": ratio(fig.get("cpu_ms_per_msg"), b.get("cpu_ms_per_msg")),
                # With the database server's CPU (SQLite's is inside the gateway's processes).
                "cpu_with_db_ms_per_msg": ratio(with_db(fig), with_db(b)),
                "peak_rss_mb": ratio(fig.get("peak_rss_mb"), b.get("peak_rss_mb")),
            }
        fig["ratios"] = ratios


def with_db(fig: dict[str, Any]) -> float | None:
    """CPU ms per message of the target and its database server together."""
    own: float | None = fig.get("cpu_ms_per_msg")
    if own is None:
        return None
    db: float = fig.get("db_cpu_ms_per_msg") or 0.0
    return round(own + db, 3)


def check_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets (bench/goals.py)."""
    return goals.check(results)


def targets_lines(checks: list[dict[str, Any]]) -> list[str]:
    out = []
    for check in checks:
        verdict = {True: "PASS", False: "FAIL", None: "info" if check.get("op") is None else "n/a "}
        out.append(
            f"  {verdict[check['pass']]}  {check['target']} [{check['scenario']}]: {check['value']}"
        )
        if check.get("note"):
            out.append(f"        ({check['note']})")
    return out


def budget_line(results: dict[str, Any]) -> list[str]:
    """What the unflagged target asks of the gateway's CPU on this machine."""
    b = goals.cpu_budget(results)
    if b is None:
        return []
    return [
        f"  Unflagged {b['factor']}x Postfix = {b['needed_msgs_per_s']} msg/s on {b['cores']} "
        f"cores: {b['machine_ms_per_msg']} ms of machine CPU per message, of which the load "
        f"tools took {b['tools_ms_per_msg']}: the gateway may spend at most "
        f"{b['gateway_budget_ms_per_msg']} ms per message (this run: {b['gateway_ms_per_msg']})."
    ]


def _num(value: float | None, width: int, digits: int = 1) -> str:
    if value is None:
        return "-".rjust(width)
    return f"{value:.{digits}f}".rjust(width)


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def table(results: dict[str, Any]) -> str:
    out: list[str] = []
    meta = results["meta"]
    out.append(
        f"Safeguarding Mail Gateway benchmark, {meta['started']} on {meta['machine']['cpu']} "
        f"({meta['machine']['cores']} cores, {meta['machine']['memory_gb']} GB), "
        f"load average at start {meta['machine']['loadavg']}"
    )
    versions = meta.get("versions", {})
    out.append(
        f"gateway {versions.get('gateway')}, Postfix {versions.get('postfix')}, aiosmtpd "
        f"{versions.get('aiosmtpd')}, aiosmtplib {versions.get('aiosmtplib')}, Python "
        f"{meta['machine']['python']}, {meta['machine']['os']}; command: {meta['command']}"
    )
    if meta.get("gateway_at_end") and meta["gateway_at_end"] != versions.get("gateway"):
        out.append(
            f"WARNING: the gateway changed during the run (now {meta['gateway_at_end']}): "
            "scenarios may have measured different code."
        )
    out.append(
        "msg/s: messages / (first sent -> last done: its relayed copy at the sink, or for a "
        "hold the gateway's 250; the gateway's notices are counted apart);\n"
        "p50/p99: one session, one message at a time, MAIL FROM -> reply to the end of DATA "
        "(the cold start: under its load); +p50/+p99: added over smtp-sink direct;\n"
        "CPU: the target's process tree (gateway-2pg: its two nodes; PostgreSQL's server "
        "apart, below); RSS MB: peak (VmHWM; Postfix: its processes' PSS "
        "summed); other: cores used by processes outside the bench (a shared machine's noise)."
    )
    header = (
        f"{'target':<11} {'msg/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'+p50':>7} {'+p99':>7} "
        f"{'CPU s':>7} {'CPU ms/msg':>10} {'RSS MB':>8} {'other':>6}  ok"
    )
    for scenario in results["scenarios"]:
        out.append("")
        out.append(f"== {scenario['name']}: {scenario['title']}")
        gw = scenario["targets"].get("gateway", {})
        if gw:
            out.append(f"   load: {gw.get('load_tool', '')}")
            if gw.get("latency_tool"):
                out.append(f"   latency: {gw['latency_tool']}")
        out.append("   " + header)
        for name in TARGET_ORDER:
            fig = scenario["targets"].get(name)
            if fig is None:
                continue
            if fig.get("error"):
                out.append(f"   {name:<11} FAILED: {fig['error'][:300]}")
                continue
            checked = fig.get("held_ok") is not False and fig.get("exactly_once") is not False
            ok = "yes" if fig.get("complete") and fig.get("client_ok", True) and checked else "NO"
            out.append(
                "   "
                + f"{name:<11} {_num(fig.get('msgs_per_s'), 8)} "
                + f"{_num(fig.get('lat_p50_ms'), 8, 2)} {_num(fig.get('lat_p99_ms'), 8, 2)} "
                + f"{_num(fig.get('lat_added_p50_ms'), 7, 2)} "
                + f"{_num(fig.get('lat_added_p99_ms'), 7, 2)} "
                + f"{_num(fig.get('cpu_s'), 7, 2)} {_num(fig.get('cpu_ms_per_msg'), 10, 3)} "
                + f"{_num(fig.get('peak_rss_mb'), 8)} {_num(fig.get('foreign_cores'), 6, 2)}  {ok}"
            )
        for name in ("gateway", "bare", "postfix"):
            fig = scenario["targets"].get(name)
            if not fig or not fig.get("ratios"):
                continue
            parts = []
            for base, r in fig["ratios"].items():
                parts.append(
                    f"/{base}: msg/s {_x(r['msgs_per_s'])}, p50 {_x(r['lat_p50'])}, "
                    f"p99 {_x(r['lat_p99'])} "
                    f"({_num(r['lat_p99_added_ms'], 0, 2).strip()} ms), "
                    f"CPU/msg {_x(r['cpu_ms_per_msg'])}, RSS {_x(r['peak_rss_mb'])}"
                )
            out.append(f"   {name:<11} " + "; ".join(parts))
        out += _nodes_lines(scenario)
        if gw.get("notices_expected"):
            out.append(
                f"   gateway notices: {gw['notices_received']} of {gw['notices_expected']} "
                f"received, the last {gw['notices_last_s']} s after the first message "
                f"(messages done after {gw['e2e_s']} s)"
            )
        if gw.get("replies") or gw.get("latency_replies"):
            out.append(
                f"   gateway replies: {gw.get('replies') or gw.get('latency_replies')}"
                + (f"; errors: {gw['client_error']}" if gw.get("client_error") else "")
            )
        over_tls = {
            name: f"{fig['relayed_over_tls']}/{fig.get('relayed_expected')}"
            for name, fig in scenario["targets"].items()
            if "relayed_over_tls" in fig
        }
        if over_tls:
            out.append(f"   copies at the MX sink over TLS: {over_tls}")
        cold = scenario.get("cold")
        if cold:
            out.append(
                f"   cold: {cold['fetched_exactly_once']}/{cold['domains']} policies fetched "
                f"exactly once ({cold['fetches_total']} fetches), at most "
                f"{cold['max_fetches_in_flight']} in flight; fast-domain latency p50 "
                f"{cold['fast_domain_lat_p50_ms']} / p99 {cold['fast_domain_lat_p99_ms']} / max "
                f"{cold['fast_domain_lat_max_ms']} ms; slow domains ({cold['slow_delay_s']} s) "
                f"min {cold['slow_domain_lat_min_ms']} ms; warm probe p50 "
                f"{cold['probe']['lat_p50_ms']} / p99 {cold['probe']['lat_p99_ms']} ms"
            )
    noisy = []
    for scenario in results["scenarios"]:
        for name, fig in scenario["targets"].items():
            worst = max(fig.get("foreign_cores") or 0, fig.get("latency_foreign_cores") or 0)
            if worst > 0.3:
                noisy.append(f"{scenario['name']}/{name} ({worst:.2f} cores)")
    if noisy:
        out.append("")
        out.append(
            "WARNING: other processes used > 0.3 cores during: "
            + ", ".join(noisy)
            + ". Those figures are noisy: run again on a quiet machine."
        )
    out += _nodes_summary(results)
    out.append("")
    out.append("Targets (ratios from this run):")
    out += targets_lines(results["targets"])
    out += budget_line(results)
    scaling = results.get("scaling")
    if scaling:
        out.append("")
        out.append(scaling["text"])
    experiments = results.get("experiments")
    if experiments:
        out.append("")
        out.append(experiments["text"])
    profile = results.get("profile")
    if profile:
        out.append("")
        out.append(profile["text"])
    return "\n".join(out)


def _outcome(fig: dict[str, Any]) -> str:
    parts = []
    if "held_in_store" in fig:
        parts.append(f"{fig['held_in_store']}/{fig['messages']} held in the store")
    if "relayed_received" in fig:
        parts.append(
            f"{fig['relayed_received']}/{fig['relayed_expected']} copies at the sink"
            + (", exactly once" if fig.get("exactly_once") else ": NOT exactly once")
        )
    if "notices_expected" in fig:
        parts.append(f"notices {fig['notices_received']} of {fig['notices_expected']}")
    if "relayed_received" not in fig and fig.get("exactly_once") is False:
        parts.append("more notices than expected")
    return "; ".join(parts)


def _nodes_lines(scenario: dict[str, Any]) -> list[str]:
    """The database's share of the CPU, the outcome, and the ratio to the one-node target."""
    out = []
    for name in ("gateway", "gateway-2pg"):
        fig = scenario["targets"].get(name)
        if not fig or fig.get("error"):
            continue
        if "db_cpu_ms_per_msg" in fig:
            out.append(
                f"   {name:<11} CPU ms/msg: gateway processes {_num(fig['cpu_ms_per_msg'], 0, 3)}"
                f" + PostgreSQL {_num(fig['db_cpu_ms_per_msg'], 0, 3)} = "
                f"{_num(with_db(fig), 0, 3)} ({fig['db_processes']} server processes, peak"
                f" {_num(fig['db_peak_rss_mb'], 0)} MB PSS)"
            )
        base = ALSO_AGAINST.get(name)
        r = fig.get("ratios", {}).get(base) if base else None
        if r:
            out.append(
                f"   {name:<11} /{base}: msg/s {_x(r['msgs_per_s'])}, p50 {_x(r['lat_p50'])}, "
                f"p99 {_x(r['lat_p99'])} ({_num(r['lat_p99_added_ms'], 0, 2).strip()} ms), "
                f"CPU/msg {_x(r['cpu_ms_per_msg'])} (gateway processes), "
                f"{_x(r['cpu_with_db_ms_per_msg'])} (with the database)"
            )
        if _outcome(fig):
            out.append(f"   {name:<11} outcome: {_outcome(fig)}")
    return out


def _nodes_summary(results: dict[str, Any]) -> list[str]:
    rows = []
    for scenario in results["scenarios"]:
        two = scenario["targets"].get("gateway-2pg", {})
        r = two.get("ratios", {}).get("gateway")
        if not r:
            continue
        one = scenario["targets"]["gateway"]
        rows.append(
            f"  {scenario['name']}: {two.get('msgs_per_s')} vs {one.get('msgs_per_s')} msg/s ="
            f" {_x(r['msgs_per_s'])}; p99 {two.get('lat_p99_ms')} vs {one.get('lat_p99_ms')} ms;"
            f" CPU ms/msg {with_db(two)} (of which PostgreSQL {two.get('db_cpu_ms_per_msg')})"
            f" vs {one.get('cpu_ms_per_msg')} = {_x(r['cpu_with_db_ms_per_msg'])}"
        )
    if not rows:
        return []
    return ["", "Two nodes on PostgreSQL (gateway-2pg) / one node on SQLite (gateway):", *rows]


def write_json(results: dict[str, Any], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    stamp = results["meta"]["started"].replace(":", "").replace("-", "")
    path = folder / f"{stamp}.json"
    path.write_text(json.dumps(results, indent=1, default=str) + "\n")
    return path
