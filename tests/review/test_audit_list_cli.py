"""`gateway audit list` as an operator runs it: each entry one line ending in its sentence,
`--verbose` with each entry's facts under it, `--json` with every field. The trail is written
by the store the gateway uses, with the same event functions the gateway calls."""

from __future__ import annotations

import json
from pathlib import Path

from gateway.audit import events
from gateway.config.loader import load
from gateway.runtime.parts import open_store
from rig.cli import gateway_script, run_gateway

HUNDRED = [f"parent{n:03}@nosts.test" for n in range(100)]
SECURE = "colleague@secure.test"
FACTS = {"secure.test": {"domain": "secure.test", "transport": "mta-sts-enforce", "mx": {}}}


async def _trail(config: Path) -> None:
    store = await open_store(load(config))
    try:
        await store.append_audit(
            [
                events.received("q1", "<m1>", "head@school.test", HUNDRED, "192.0.2.7", ["tag"]),
                events.relayed("q2", "<m2>", "head@school.test", [SECURE], ["tag"], FACTS),
                events.user_added("lead@school.test", "reviewer", "installer"),
            ]
        )
    finally:
        await store.close()


async def test_audit_list_reads_as_sentences_and_keeps_every_fact(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text('[store]\ndata_dir = "state"\n')
    await _trail(config)

    listed = run_gateway(gateway_script(), "audit", "list", "--config", config)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert len(lines) == 3, lines
    assert lines[0].endswith(
        "Received from head@school.test (client 192.0.2.7) for parent000@nosts.test, "
        "parent001@nosts.test, parent002@nosts.test and 97 more; flagged: tag"
    ), lines[0]
    assert lines[1].split()[2] == "relayed"
    assert lines[1].endswith(f"  Relayed at once to {SECURE} over MTA-STS-enforced TLS")
    assert lines[2].endswith("  Account lead@school.test (reviewer) added by installer")
    assert "{" not in listed.stdout  # no facts JSON unless asked for
    assert len(max(lines, key=len)) < 250  # a hundred recipients are still one short line

    verbose = run_gateway(gateway_script(), "audit", "list", "--verbose", "--config", config)
    assert verbose.returncode == 0, verbose.stderr
    shown = verbose.stdout.splitlines()
    assert shown[::2] == lines
    received, relayed, added = (json.loads(line) for line in shown[1::2])
    assert received["recipients"] == HUNDRED  # nothing lost: every address is there
    assert relayed["facts"] == FACTS
    assert added == {"user": "lead@school.test", "role": "reviewer"}

    as_json = run_gateway(gateway_script(), "audit", "list", "--json", "--config", config)
    assert as_json.returncode == 0, as_json.stderr
    entries = json.loads(as_json.stdout)
    assert [e["event"] for e in entries] == ["received", "relayed", "user-added"]
    assert entries[0]["data"]["recipients"] == HUNDRED
    assert all(line.endswith(f"  {e['sentence']}") for e, line in zip(entries, lines, strict=True))
    assert all(e["hash"] for e in entries)
