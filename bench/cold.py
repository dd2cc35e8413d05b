"""The cold start's own questions, answered from the fetch watcher's log and the driver's
per-message latencies: was each domain's policy fetched exactly once, how many fetches were in
flight at most, and did any message wait on another domain's (slow) lookup?"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from bench import zones
from bench.measure import latency_figures, percentile
from bench.scenarios import SLOW_DELAY

# The gateway's PolicyFetcher allows 16 fetches at once (gateway/stsfetch.py,
# max_concurrency=16): "bounded" means never more than that in flight.
FETCH_BOUND = 16


def read_events(path: Path, offset: int) -> list[dict[str, Any]]:
    with path.open("rb") as f:
        f.seek(offset)
        return [json.loads(line) for line in f.read().splitlines() if line.strip()]


def max_in_flight(events: list[dict[str, Any]]) -> int:
    edges = sorted(
        [(e["start"], 1) for e in events] + [(e["end"], -1) for e in events],
        key=lambda edge: (edge[0], edge[1]),
    )
    most = current = 0
    for _, step in edges:
        current += step
        most = max(most, current)
    return most


def analyse(events: list[dict[str, Any]], driver: dict[str, Any]) -> dict[str, Any]:
    hosts = Counter(e["sni"] for e in events)
    cold = [f"mta-sts.{d}" for d in zones.cold_domains()]
    counts = [hosts.get(h, 0) for h in cold]
    slow = set(zones.slow_domains())
    load = driver["load"]
    fast_latencies = [
        lat for lat, tag in zip(load["latencies_ms"], load["tags"], strict=True) if tag not in slow
    ]
    slow_latencies = [
        lat for lat, tag in zip(load["latencies_ms"], load["tags"], strict=True) if tag in slow
    ]
    probe = driver.get("probe") or {"latencies_ms": []}
    probe_latencies = probe["latencies_ms"]
    limit_ms = SLOW_DELAY * 1000
    once = sum(1 for c in counts if c == 1)
    in_flight = max_in_flight([e for e in events if e["sni"] in set(cold)])
    result = {
        "domains": len(cold),
        "fetched_exactly_once": once,
        "never_fetched": sum(1 for c in counts if c == 0),
        "fetched_more_than_once": {h: c for h, c in zip(cold, counts, strict=True) if c > 1},
        "fetches_total": sum(counts),
        "max_fetches_in_flight": in_flight,
        "fetch_bound": FETCH_BOUND,
        "slow_domains": sorted(slow),
        "slow_delay_s": SLOW_DELAY,
        "fast_domain_messages": len(fast_latencies),
        "fast_domain_lat_p50_ms": percentile(fast_latencies, 50),
        "fast_domain_lat_p99_ms": percentile(fast_latencies, 99),
        "fast_domain_lat_max_ms": round(max(fast_latencies), 1) if fast_latencies else None,
        "slow_domain_lat_min_ms": round(min(slow_latencies), 1) if slow_latencies else None,
        "probe": latency_figures(probe_latencies),
    }
    result["single_flight"] = once == len(cold)
    result["bounded"] = 0 < in_flight <= FETCH_BOUND
    result["no_waiting_on_other_domains"] = bool(fast_latencies) and (
        max(fast_latencies) < limit_ms and (not probe_latencies or max(probe_latencies) < limit_ms)
    )
    return result
