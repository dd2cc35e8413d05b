"""The summary of several runs (``make bench BENCH_ARGS="--runs 3"``): the median of every
figure and of every target's number, each target PASS only when its median passes, with the
per-run numbers beside it (a ratio that passes in one run of three is not passing).

Written to bench/results/ as ``summary-<time>.json`` and ``summary-<time>.md`` (not ignored by
git, so a final summary can be committed; the single runs' JSON stays ignored).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from bench.goals import cold_best_ratio, cpu_budget, verdict
from bench.report import TARGET_ORDER

# The figures of the Markdown table (the JSON has the median of every numeric figure).
TABLE_KEYS = (
    ("msgs_per_s", "msg/s", 1),
    ("lat_p50_ms", "p50 ms", 2),
    ("lat_p99_ms", "p99 ms", 2),
    ("cpu_ms_per_msg", "CPU ms/msg", 3),
    ("peak_rss_mb", "peak RSS MB", 1),
)


def median(values: list[float | None]) -> float | None:
    """The median of the runs that measured it (None when none did)."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    return round(statistics.median(present), 3)


def _numbers(fig: dict[str, Any]) -> dict[str, float]:
    """Every numeric figure, and the ratios to each baseline as `ratios.<baseline>.<figure>`."""
    out: dict[str, float] = {}
    for key, value in fig.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = value
    for base, ratios in (fig.get("ratios") or {}).items():
        for key, value in ratios.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                out[f"ratios.{base}.{key}"] = value
    return out


def figures(runs: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """scenario -> target -> figure -> {"median", "runs"}, over the runs in order."""
    order: list[tuple[str, str]] = []
    values: dict[tuple[str, str], list[dict[str, float]]] = {}
    for i, results in enumerate(runs):
        for scenario in results["scenarios"]:
            for target, fig in scenario["targets"].items():
                key = (scenario["name"], target)
                if key not in values:
                    order.append(key)
                    values[key] = [{} for _ in runs]
                values[key][i] = _numbers(fig)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for key in order:
        per_run = values[key]
        names = sorted({name for numbers in per_run for name in numbers})
        out.setdefault(key[0], {})[key[1]] = {
            name: {
                "median": median([n.get(name) for n in per_run]),
                "runs": [n.get(name) for n in per_run],
            }
            for name in names
        }
    return out


def targets(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each target's median against its threshold. It passes only when the median passes and
    more than half of the runs measured it."""
    order: list[str] = []
    checks: dict[str, dict[str, Any]] = {}
    per_run: dict[str, list[float | None]] = {}
    for i, results in enumerate(runs):
        for check in results.get("targets", []):
            key = check.get("id") or f"{check['target']} [{check['scenario']}]"
            if key not in checks:
                order.append(key)
                checks[key] = check
                per_run[key] = [None] * len(runs)
            per_run[key][i] = check.get("metric", check.get("ratio"))
    out = []
    for key in order:
        check = checks[key]
        values = per_run[key]
        mid = median(values)
        counted = sum(v is not None for v in values)
        op, threshold = check.get("op"), check.get("threshold")
        passed = verdict(mid, op, threshold)
        if passed and counted * 2 <= len(runs):
            passed = False  # measured in too few of the runs to say it passes
        out.append(
            {
                "id": key,
                "target": check["target"],
                "scenario": check["scenario"],
                "op": op,
                "threshold": threshold,
                "unit": check.get("unit", ""),
                "median": mid,
                "runs": values,
                "runs_passing": [verdict(v, op, threshold) for v in values],
                "measured_in": counted,
                "pass": passed,
            }
        )
    return out


def bounds(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The medians of what the scenario and the machine allow: the cold start's best ratio
    to Postfix, and the gateway's CPU budget per message for 2.0x unflagged."""
    best = [cold_best_ratio(r)[1] for r in runs]
    budgets = [cpu_budget(r) or {} for r in runs]
    keys = ("needed_msgs_per_s", "machine_ms_per_msg", "tools_ms_per_msg")
    out: dict[str, Any] = {"cold_best_ratio": {"median": median(best), "runs": best}}
    for key in (*keys, "gateway_budget_ms_per_msg", "gateway_ms_per_msg"):
        values = [b.get(key) for b in budgets]
        out[key] = {"median": median(values), "runs": values}
    return out


def summarise(runs: list[dict[str, Any]], paths: list[Path] | None = None) -> dict[str, Any]:
    first = runs[0]["meta"] if runs else {}
    summary: dict[str, Any] = {
        "meta": {
            "started": first.get("started"),
            "runs": len(runs),
            "run_files": [p.name for p in paths or []],
            "command": first.get("command"),
            "machine": first.get("machine"),
            "versions": first.get("versions"),
            "gateway_at_end": runs[-1]["meta"].get("gateway_at_end") if runs else None,
        },
        "targets": targets(runs),
        "figures": figures(runs),
    }
    summary["bounds"] = bounds(runs)
    for results in runs:  # the scaling tables are measured once, in the last run
        if results.get("scaling"):
            summary["scaling"] = {k: v for k, v in results["scaling"].items() if k != "text"}
            summary["scaling_text"] = results["scaling"]["text"]
    summary["text"] = text(summary)
    return summary


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}".rstrip("0").rstrip(".") if digits else f"{value:.0f}"


def _verdict(passed: bool | None, op: str | None) -> str:
    if op is None:
        return "info"
    return {True: "PASS", False: "FAIL", None: "n/a"}[passed]


def text(summary: dict[str, Any]) -> str:
    """The summary as Markdown (also printed to stdout)."""
    meta = summary["meta"]
    versions = meta.get("versions") or {}
    machine = meta.get("machine") or {}
    out = [
        f"# `make bench`: medians of {meta['runs']} runs",
        "",
        f"Started {meta.get('started')}, gateway {versions.get('gateway')}, on "
        f"{machine.get('cpu')} ({machine.get('cores')} cores), Postfix "
        f"{versions.get('postfix')}, Python {machine.get('python')}; command: "
        f"`{meta.get('command')}`; runs: {', '.join(meta.get('run_files') or []) or '-'}.",
    ]
    if meta.get("gateway_at_end") and meta["gateway_at_end"] != versions.get("gateway"):
        out.append(f"\n**The gateway changed during the runs** (now {meta['gateway_at_end']}).")
    out += [
        "",
        "## The issue's targets",
        "",
        "A target passes only when the median of its runs passes.",
        "",
        "| target | scenario | median | per run | goal | result |",
        "| --- | --- | ---: | --- | --- | --- |",
    ]
    for t in summary["targets"]:
        unit = t["unit"] if t["unit"] in ("x", "ms", "MB") else ""
        goal = f"{t['op']} {_fmt(t['threshold'])}{unit}" if t["op"] else "-"
        runs = ", ".join(_fmt(v) for v in t["runs"])
        out.append(
            f"| {t['target']} | {t['scenario']} | {_fmt(t['median'])}{unit} | {runs} | {goal} |"
            f" **{_verdict(t['pass'], t['op'])}** |"
        )
    out += _bounds_lines(summary.get("bounds") or {})
    out += [
        "",
        "## Figures (medians)",
        "",
        "| scenario | target | " + " | ".join(label for _, label, _ in TABLE_KEYS) + " |",
        "| --- | --- |" + " ---: |" * len(TABLE_KEYS),
    ]
    for scenario, by_target in summary["figures"].items():
        names = [t for t in TARGET_ORDER if t in by_target] + [
            t for t in by_target if t not in TARGET_ORDER
        ]
        for i, target in enumerate(names):
            figs = by_target[target]
            cells = [_fmt(figs.get(key, {}).get("median"), digits) for key, _, digits in TABLE_KEYS]
            label = scenario if i == 0 else ""
            out.append(f"| {label} | {target} | " + " | ".join(cells) + " |")
    if summary.get("scaling_text"):
        out += ["", "## Scaling (measured once, in the last run)", "", "```"]
        out += [summary["scaling_text"], "```"]
    return "\n".join(out) + "\n"


def _bounds_lines(b: dict[str, Any]) -> list[str]:
    out = []
    cold = (b.get("cold_best_ratio") or {}).get("median")
    if cold is not None:
        out.append(
            f"\nThe cold start's best possible ratio (its messages / the slow policy hosts' 2 s,"
            f" over Postfix): median {_fmt(cold)}x."
        )
    budget = (b.get("gateway_budget_ms_per_msg") or {}).get("median")
    if budget is not None:
        out.append(
            f"\n2.0x unflagged = {_fmt(b['needed_msgs_per_s']['median'], 1)} msg/s:"
            f" {_fmt(b['machine_ms_per_msg']['median'])} ms of machine CPU per message, the load"
            f" tools {_fmt(b['tools_ms_per_msg']['median'])}, leaving the gateway"
            f" {_fmt(budget)} ms (it spent {_fmt(b['gateway_ms_per_msg']['median'])}); medians."
        )
    return out


def write(summary: dict[str, Any], folder: Path) -> dict[str, Any]:
    """summary-<time>.json and summary-<time>.md in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = (summary["meta"].get("started") or "unknown").replace(":", "").replace("-", "")
    json_path = folder / f"summary-{stamp}.json"
    md_path = folder / f"summary-{stamp}.md"
    json_path.write_text(json.dumps(summary, indent=1, default=str) + "\n")
    md_path.write_text(summary["text"])
    return {"json": json_path, "md": md_path, "text": summary["text"]}
