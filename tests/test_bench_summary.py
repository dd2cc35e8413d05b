"""The benchmark's verdicts: the issue's targets checked on one run's figures, and the summary
of several runs (medians; a target passes only when its median does), on made-up results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench import goals, scaling, summary


def _run(
    unflagged: float,
    postfix: float,
    *,
    secure: float = 900.0,
    p99_gateway: float = 4.0,
    p99_bare: float = 2.0,
    rss: float = 150.0,
    tls_in: float | None = None,
) -> dict[str, Any]:
    """One run's results with the figures the targets read (other scenarios left out)."""

    def scenario(name: str, gateway: dict[str, Any], others: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": name,
            "title": name,
            "cold": None,
            "targets": {"gateway": gateway, **others},
        }

    runs = [
        scenario(
            "unflagged_5k",
            {
                "msgs_per_s": unflagged,
                "lat_p99_ms": p99_gateway,
                "cpu_ms_per_msg": 1.0,
                "messages": 1000,
                "cpu_s": 1.0,
                # 1.5 s of machine CPU over 1 s, of which 0.3 cores outside the bench.
                "machine_cpu_s": 1.5,
                "window_s": 1.0,
                "foreign_cores": 0.3,
            },
            {
                "postfix": {"msgs_per_s": postfix, "cpu_ms_per_msg": 2.0},
                "bare": {"lat_p99_ms": p99_bare},
            },
        ),
        scenario(
            "flagged_secure_5k",
            {"msgs_per_s": secure, "lat_p99_ms": p99_gateway + 1, "cpu_ms_per_msg": 3.0},
            {
                "postfix": {"msgs_per_s": 600.0, "cpu_ms_per_msg": 2.0},
                "bare": {"lat_p99_ms": p99_bare},
            },
        ),
        scenario("large_1mb", {"msgs_per_s": 80.0, "peak_rss_mb": rss}, {"postfix": {}}),
    ]
    if tls_in is not None:
        runs.append(scenario("plain_in", {"msgs_per_s": unflagged}, {"postfix": {}}))
        runs.append(scenario("tls_in", {"msgs_per_s": tls_in}, {"postfix": {}}))
    results: dict[str, Any] = {
        "meta": {"started": "2026-12-01T10:00:00Z", "machine": {"cores": 2}, "versions": {}},
        "scenarios": runs,
    }
    results["targets"] = goals.check(results)
    return results


def _by_id(checks: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in checks}


def test_one_run_says_each_target_in_the_issues_words() -> None:
    checks = _by_id(_run(1700.0, 800.0, tls_in=1500.0)["targets"])
    assert checks["unflagged"]["target"] == "unflagged >= 2.0x Postfix"
    assert checks["unflagged"]["metric"] == pytest.approx(2.125)
    assert checks["unflagged"]["pass"] is True
    assert checks["flagged_secure"]["pass"] is True  # 900 / 600 = 1.5
    assert checks["p99_flagged"]["metric"] == pytest.approx(3.0)
    assert checks["large_rss"]["pass"] is True
    # TLS in: the gateway's own ratio, 1500 / 1700 msg/s, at most 20% lost.
    assert checks["tls_in"]["metric"] == pytest.approx(0.882)
    assert checks["tls_in"]["pass"] is True
    # CPU per message: reported beside Postfix's, without a verdict.
    assert checks["cpu_unflagged_5k"]["metric"] == pytest.approx(0.5)
    assert checks["cpu_unflagged_5k"]["pass"] is None


def test_scenarios_not_run_have_no_verdict() -> None:
    checks = _by_id(_run(1700.0, 800.0)["targets"])
    assert "cold" not in checks
    assert "direct_tls" not in checks
    assert "tls_in" not in checks  # tls_in was not run


def test_an_unmeasured_figure_is_neither_pass_nor_fail() -> None:
    results = _run(1700.0, 800.0)
    del results["scenarios"][2]["targets"]["gateway"]["peak_rss_mb"]
    checks = _by_id(goals.check(results))
    assert checks["large_rss"]["pass"] is None


@pytest.mark.parametrize(
    ("unflagged", "expected_median", "expected_pass", "expected_runs_passing"),
    [
        # Passes in one run of three: the median fails, so the target fails.
        ((1700.0, 1500.0, 1400.0), 1.875, False, [True, False, False]),
        # Passes in two of three: the median passes.
        ((1700.0, 1650.0, 1400.0), 2.062, True, [True, True, False]),
        ((1600.0, 1600.0, 1600.0), 2.0, True, [True, True, True]),
    ],
)
def test_a_target_passes_only_when_its_median_passes(
    unflagged: tuple[float, float, float],
    expected_median: float,
    expected_pass: bool,
    expected_runs_passing: list[bool],
) -> None:
    runs = [_run(u, 800.0) for u in unflagged]
    target = _by_id(summary.targets(runs))["unflagged"]
    assert target["median"] == pytest.approx(expected_median, abs=1e-3)
    assert target["runs"] == [pytest.approx(u / 800.0, abs=1e-3) for u in unflagged]
    assert target["pass"] is expected_pass
    assert target["runs_passing"] == expected_runs_passing


def test_a_lower_is_better_target_uses_the_median_too() -> None:
    runs = [_run(1700.0, 800.0, rss=r) for r in (190.0, 260.0, 210.0)]
    target = _by_id(summary.targets(runs))["large_rss"]
    assert target["median"] == 210.0
    assert target["pass"] is False


def test_a_target_measured_in_too_few_runs_does_not_pass() -> None:
    runs = [_run(1700.0, 800.0), _run(1700.0, 800.0), _run(1700.0, 800.0)]
    for results in runs[1:]:
        results["scenarios"][0]["targets"]["gateway"]["error"] = "RuntimeError: died"
        del results["scenarios"][0]["targets"]["gateway"]["msgs_per_s"]
        results["targets"] = goals.check(results)
    target = _by_id(summary.targets(runs))["unflagged"]
    assert target["measured_in"] == 1
    assert target["median"] == pytest.approx(2.125)
    assert target["pass"] is False


def test_figures_have_a_median_and_the_per_run_values() -> None:
    runs = [_run(u, p) for u, p in ((1000.0, 800.0), (1200.0, 700.0), (900.0, 900.0))]
    runs[1]["scenarios"][0]["targets"]["gateway"]["ratios"] = {"postfix": {"msgs_per_s": 1.7}}
    figs = summary.figures(runs)["unflagged_5k"]
    assert figs["gateway"]["msgs_per_s"] == {"median": 1000.0, "runs": [1000.0, 1200.0, 900.0]}
    assert figs["postfix"]["msgs_per_s"]["median"] == 800.0
    assert figs["gateway"]["ratios.postfix.msgs_per_s"]["runs"] == [None, 1.7, None]


def test_the_summary_is_written_as_json_and_markdown(tmp_path: Path) -> None:
    runs = [_run(u, 800.0) for u in (1700.0, 1500.0, 1400.0)]
    written = summary.write(summary.summarise(runs), tmp_path)
    assert written["json"].name == "summary-20261201T100000Z.json"
    data = json.loads(written["json"].read_text())
    assert data["meta"]["runs"] == 3
    md = written["md"].read_text()
    assert "| unflagged >= 2.0x Postfix | unflagged_5k | 1.875x | 2.125, 1.875, 1.75 |" in md
    assert "**FAIL**" in md


def test_cold_start_best_ratio_is_bounded_by_the_slow_policy_hosts() -> None:
    results: dict[str, Any] = {
        "scenarios": [
            {
                "name": "cold_start_200",
                "cold": {"slow_delay_s": 2.0},
                "targets": {
                    "gateway": {"messages": 600, "msgs_per_s": 150.0},
                    "postfix": {"msgs_per_s": 680.0},
                },
            }
        ]
    }
    best, best_ratio = goals.cold_best_ratio(results)
    assert best == 300.0
    assert best_ratio == pytest.approx(0.441)


def test_the_cpu_budget_of_the_unflagged_target() -> None:
    # 2 x 800 = 1600 msg/s on 2 cores: 1.25 ms of machine CPU per message; the load tools
    # took (1.5 - 0.3 - 1.0) s over 1000 messages = 0.2 ms of it.
    budget = goals.cpu_budget(_run(1700.0, 800.0))
    assert budget is not None
    assert budget["machine_ms_per_msg"] == pytest.approx(1.25)
    assert budget["tools_ms_per_msg"] == pytest.approx(0.2)
    assert budget["gateway_budget_ms_per_msg"] == pytest.approx(1.05)


@pytest.mark.parametrize(
    ("points", "expected"),
    [
        ([(1, 3.0), (5, 5.0), (20, 12.5), (100, 52.5)], (0.5, 2.5)),
        ([(1, 2.0), (100, 2.0)], (0.0, 2.0)),
        ([(5, 1.0)], None),
    ],
)
def test_the_per_recipient_line(
    points: list[tuple[float, float]], expected: tuple[float, float] | None
) -> None:
    assert scaling.fit(points) == expected


def test_recipients_repeat_domains_with_distinct_local_parts() -> None:
    addresses = scaling.recipients(100, scaling.SECURE_DOMAINS)
    assert len(set(addresses)) == 100
    assert {a.split("@")[1] for a in addresses} == set(scaling.SECURE_DOMAINS)
