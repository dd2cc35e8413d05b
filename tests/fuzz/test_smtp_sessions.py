"""The stateful SMTP fuzzer against a live `gateway serve` (see fuzz/sessions.py for the rules
and invariants).

`make test` runs a bounded profile: derandomised (the same examples every run, so it cannot
flake), about a minute. `make fuzz` sets GATEWAY_FUZZ_MINUTES (default 20) and runs batches of
randomly seeded examples until the time is up; a failure prints the seed and the shrunk steps.
"""

from __future__ import annotations

import os
import time

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from fuzz.sessions import SmtpSessions
from fuzz.watch import GatewayWatch
from rig.gatewayproc import Gateway

pytestmark = pytest.mark.e2e

SLOW_IS_FINE = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
BOUNDED = settings(
    max_examples=100,
    stateful_step_count=30,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=SLOW_IS_FINE,
)
LONG_BATCH = settings(
    max_examples=200,
    stateful_step_count=50,
    derandomize=False,
    database=None,
    deadline=None,
    suppress_health_check=SLOW_IS_FINE,
    print_blob=True,
)


def test_smtp_sessions_keep_every_promise(fuzz_gateway: Gateway) -> None:
    SmtpSessions.gateway = fuzz_gateway
    SmtpSessions.watch = watch = GatewayWatch(fuzz_gateway)
    minutes = os.environ.get("GATEWAY_FUZZ_MINUTES")
    if not minutes:
        run_state_machine_as_test(SmtpSessions, settings=BOUNDED)
    else:
        end = time.monotonic() + float(minutes) * 60
        while time.monotonic() < end:
            run_state_machine_as_test(SmtpSessions, settings=LONG_BATCH)
    # A fuzzer that never got a message through proves nothing: it must have reached both.
    counts = watch.counts()
    assert counts.relayed > 0, "no session got a message relayed"
    assert counts.holds > 0, "no session got a message held"
