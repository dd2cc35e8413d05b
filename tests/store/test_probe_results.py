"""The last probe of each domain, as the web allowlist page reads it back: one row a domain,
the newest replacing the one before, kept across a reopen of the store (on either backend)."""

from __future__ import annotations

import os

from gateway.store import ProbeRecord
from gateway.store.sqlite import HELD_DB
from store.backends import Nodes


async def test_the_newest_probe_of_a_domain_replaces_the_one_before(store_nodes: Nodes) -> None:
    host = {"host": "mx1.partner.test", "meets": False, "why": "no STARTTLS offered"}
    store = await store_nodes.node()
    await store.record_probes(
        [
            ProbeRecord("partner.test", 100.0, True, "1 of 1 MX host(s) met the policy"),
            ProbeRecord("other.test", 100.0, True, "1 of 1 MX host(s) met the policy"),
        ]
    )
    failing = ProbeRecord("partner.test", 200.0, False, "mx1.partner.test: no STARTTLS", (host,))
    await store.record_probes([failing])
    await store_nodes.close()

    found = await (await store_nodes.node()).last_probes()
    assert sorted(found) == ["other.test", "partner.test"]
    assert found["partner.test"] == failing
    assert found["other.test"].secure is True
    if store_nodes.backend == "sqlite":
        assert os.stat(store_nodes.folder / HELD_DB).st_mode & 0o077 == 0
