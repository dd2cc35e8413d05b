"""Operational metrics in the Prometheus text format (prometheus_client), served at /metrics.

Counters count events in this process since it started; gauges that describe the store (holds
awaiting review) are read from it when scraped.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

REGISTRY = CollectorRegistry(auto_describe=True)

MESSAGES = Counter(
    "gateway_messages",
    "Messages handled by the SMTP filter, by outcome.",
    ["outcome"],  # relayed, held, split, tempfailed, refused
    registry=REGISTRY,
)
RECIPIENTS = Counter(
    "gateway_recipients",
    "Recipients of checked (flagged) mail, by action.",
    ["action"],  # relay, hold, tempfail
    registry=REGISTRY,
)
DECISIONS = Counter(
    "gateway_review_decisions",
    "Review outcomes: released, rejected, expired, escalated.",
    ["decision"],
    registry=REGISTRY,
)
POSTURE_SECONDS = Histogram(
    "gateway_posture_check_seconds",
    "Time to gather a recipient domain's transport facts (MX, MTA-STS, TLS-RPT, DANE).",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
POLICY_CACHE = Counter(
    "gateway_policy_cache_lookups",
    "MTA-STS policy lookups by result: hit (cached policy used) or fetch.",
    ["result"],
    registry=REGISTRY,
)
HOLDS_AWAITING = Gauge(
    "gateway_holds_awaiting_review",
    "Held messages not yet reviewed.",
    registry=REGISTRY,
)
HOLDS_ESCALATED = Gauge(
    "gateway_holds_escalated",
    "Held messages not yet reviewed and already escalated.",
    registry=REGISTRY,
)
QUEUE_DEPTH = Gauge(
    "gateway_queue_depth",
    "Messages in the delivery queue ([delivery] direct) still waiting for a recipient.",
    registry=REGISTRY,
)
DELIVERIES = Counter(
    "gateway_queue_deliveries",
    "Direct deliveries per recipient, by outcome: delivered, deferred, refused, held, failed "
    "(given up, unflagged), purged.",
    ["outcome"],
    registry=REGISTRY,
)
for _outcome in ("delivered", "deferred", "refused", "held", "failed", "purged"):
    DELIVERIES.labels(_outcome)  # shown at 0 before the first
AUDIT_HEAD = Gauge(
    "gateway_audit_head_seq",
    "The sequence number of the audit trail's newest entry, when last witnessed.",
    registry=REGISTRY,
)
AUDIT_HEAD_PROBLEMS = Counter(
    "gateway_audit_head_problems",
    "Witnessed audit heads found gone: backwards (a lower head) or rewritten (entry changed).",
    ["problem"],
    registry=REGISTRY,
)
for _problem in ("backwards", "rewritten"):
    AUDIT_HEAD_PROBLEMS.labels(_problem)  # shown at 0 before the first


def render() -> bytes:
    return generate_latest(REGISTRY)


CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
