"""Secure links for the portal's tests, made the way the gateway makes them: a held message,
then the decision "send by secure link" through the store (``changes.SendLinks``), by a
process of its own beside the running `gateway serve`, as `gateway held` is."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from rig.cli import clean_env

_SCRIPT = """
import asyncio, json, secrets, sys, time
from gateway.config.loader import load
from gateway.core import securelink
from gateway.runtime.parts import open_store
from gateway.store import Status
from gateway.store.changes import SendLinks
from gateway.store.links import NewLink

async def main(config, hold_id, lifetime):
    settings = load(config)
    store = await open_store(settings)
    try:
        hold = await store.get(hold_id)
        now = time.time()
        made, links = {}, []
        for n, recipient in enumerate(r.address for r in hold.recipients):
            token = securelink.token_text(secrets.token_bytes(securelink.TOKEN_BYTES))
            link_id = f"LTEST{secrets.token_hex(3).upper()}{n}"
            digest = securelink.token_digest(token)
            links.append(NewLink(link_id, recipient, digest, now + lifetime))
            made[recipient] = {"token": token, "link": link_id}
        change = SendLinks(now, "alice", "the family's address is not secure", tuple(links))
        changed = await store.update(hold_id, frozenset({Status.HELD}), change)
        assert changed is not None, "the hold was not held"
        print(json.dumps(made))
    finally:
        await store.close()

async def change(config, what, ident):
    settings = load(config)
    store = await open_store(settings)
    try:
        if what == "revoke":
            assert await store.revoke_link(ident, time.time(), "alice") is not None
        elif what == "purge":
            assert await store.purge_body(ident)
    finally:
        await store.close()

if sys.argv[2] in ("revoke", "purge"):
    asyncio.run(change(sys.argv[1], sys.argv[2], sys.argv[3]))
    print("{}")
else:
    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
"""


def send_links(
    config: Path, hold_id: str, lifetime: float = 14 * 86400
) -> dict[str, dict[str, str]]:
    """Send the hold by secure link; recipient -> {"token": ..., "link": link id}."""
    return _run(config, hold_id, str(lifetime))


def revoke(config: Path, link_id: str) -> None:
    _run(config, "revoke", link_id)


def purge(config: Path, hold_id: str) -> None:
    _run(config, "purge", hold_id)


def _run(config: Path, *args: str) -> dict[str, dict[str, str]]:
    result = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(config), *args],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    made = json.loads(result.stdout)
    assert isinstance(made, dict)
    return made
