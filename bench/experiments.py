"""What the recommended gateway changes would buy, measured by imitating them from outside the
gateway's code (bench/variant.py), in the same run as the baselines they are compared with."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from bench.report import diff, ratio
from bench.scenarios import Scenario, by_name
from bench.targets import WORKERS, GatewayTarget

# (patches, [smtp] workers, what it shows, scenarios)
VARIANTS: list[tuple[str, int, str, list[str]]] = [
    (
        "",
        1,
        "one worker process ([smtp] workers = 1)",
        ["unflagged_5k", "flagged_secure_5k", "cold_start_200"],
    ),
    (
        "factscache",
        WORKERS,
        "domain facts reused for 60 s (no DNS per message)",
        ["unflagged_5k", "flagged_secure_5k"],
    ),
]


def _baseline(results: dict[str, Any], scenario: str, target: str) -> dict[str, Any]:
    for entry in results["scenarios"]:
        if entry["name"] == scenario:
            fig: dict[str, Any] = entry["targets"].get(target, {})
            return fig
    return {}


def run(
    results: dict[str, Any],
    make: Callable[[str, int], GatewayTarget],
    measure: Callable[[GatewayTarget, Scenario], tuple[dict[str, Any], Any]],
) -> dict[str, Any]:
    """`measure` warms up and measures a begun target as the main run does; it returns the
    figures and, for the cold start, the fetch analysis."""
    rows: list[dict[str, Any]] = []
    for variant, processes, label, scenarios in VARIANTS:
        for scenario in by_name(scenarios):
            target = make(variant, processes)
            print(f"bench: experiment {target.name} / {scenario.name}", file=sys.stderr)
            cold = None
            try:
                target.begin(scenario)
                figures, cold = measure(target, scenario)
            except Exception as exc:  # an experiment that fails must not lose the run
                figures = {"error": f"{type(exc).__name__}: {str(exc)[:500]}"}
            finally:
                target.end()
            stock = _baseline(results, scenario.name, "gateway")
            postfix = _baseline(results, scenario.name, "postfix")
            bare = _baseline(results, scenario.name, "bare")
            rows.append(
                {
                    "variant": variant,
                    "processes": processes,
                    "label": label,
                    "scenario": scenario.name,
                    "figures": figures,
                    "cold": cold,
                    "msgs_per_s_vs_stock": ratio(
                        figures.get("msgs_per_s"), stock.get("msgs_per_s")
                    ),
                    "msgs_per_s_vs_postfix": ratio(
                        figures.get("msgs_per_s"), postfix.get("msgs_per_s")
                    ),
                    "p99_added_over_bare_ms": diff(
                        figures.get("lat_p99_ms"), bare.get("lat_p99_ms")
                    ),
                }
            )
    lines = [
        "Experiments (the gateway patched from outside, bench/variant.py; ratios to this run's "
        "stock gateway and Postfix):",
        f"   {'variant':<34} {'scenario':<18} {'msg/s':>7} {'x stock':>8} {'x postfix':>9} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'p99-bare':>8} {'CPU ms/msg':>10} {'RSS MB':>7}",
    ]
    for row in rows:
        fig = row["figures"]
        if "error" in fig:
            lines.append(f"   {row['variant']} {row['scenario']}: failed: {fig['error'][:200]}")
            continue
        name = f"{row['variant'] or 'stock'}, workers={row['processes']}"
        lines.append(
            f"   {name:<34} {row['scenario']:<18} {_n(fig.get('msgs_per_s'), 7, 1)} "
            f"{_n(row['msgs_per_s_vs_stock'], 8, 2)} {_n(row['msgs_per_s_vs_postfix'], 9, 2)} "
            f"{_n(fig.get('lat_p50_ms'), 7, 2)} {_n(fig.get('lat_p99_ms'), 7, 2)} "
            f"{_n(row['p99_added_over_bare_ms'], 8, 2)} {_n(fig.get('cpu_ms_per_msg'), 10, 3)} "
            f"{_n(fig.get('peak_rss_mb'), 7, 1)}"
        )
        if row["cold"]:
            c = row["cold"]
            lines.append(
                f"   {'':<34} cold: {c['fetched_exactly_once']}/{c['domains']} policies fetched "
                f"exactly once ({c['fetches_total']} fetches), at most "
                f"{c['max_fetches_in_flight']} in flight; fast-domain max "
                f"{c['fast_domain_lat_max_ms']} ms"
            )
    return {"rows": rows, "text": "\n".join(lines)}


def _n(value: float | None, width: int, digits: int) -> str:
    return ("-" if value is None else f"{value:.{digits}f}").rjust(width)
