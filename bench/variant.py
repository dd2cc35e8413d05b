"""Experimental changes applied to `gateway serve` from outside the gateway's code, to put
numbers on the report's recommendations (``make bench BENCH_ARGS=--variants``). Nothing here
is how the gateway should be changed; a patch only imitates the effect of a change.

The harness sets BENCH_VARIANT and puts bench/variant_site first on PYTHONPATH; its
sitecustomize applies the patches in every process that starts, so the gateway's own worker
processes ([smtp] workers) are patched too.

* ``factscache``: a domain's transport facts (MX, MTA-STS record and policy, TLS-RPT, DANE)
  reused for 60 s instead of looked up again for every message (a real change would follow
  the DNS TTLs and the policy cache's rules).
"""

from __future__ import annotations

import functools
import os
import time
from typing import Any

FACTS_TTL = 60.0
ENV = "BENCH_VARIANT"


def _factscache() -> None:
    from gateway.posture import domaincheck

    original = domaincheck.DomainChecker.facts
    cache: dict[str, tuple[float, Any]] = {}

    @functools.wraps(original)
    async def facts(self: Any, domain: str) -> Any:
        now = time.monotonic()
        hit = cache.get(domain)
        if hit is not None and hit[0] > now:
            return hit[1]
        value = await original(self, domain)
        cache[domain] = (now + FACTS_TTL, value)
        return value

    domaincheck.DomainChecker.facts = facts  # type: ignore[method-assign]


PATCHES = {"factscache": _factscache}


def apply() -> None:
    for name in filter(None, os.environ.get(ENV, "").split(",")):
        PATCHES[name]()
