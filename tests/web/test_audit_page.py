"""The audit trail page's verdict on a trail re-hashed by someone without the audit key."""

from __future__ import annotations

import json

from gateway.core.auditchain import legacy_digest
from web.site import Site


async def test_an_entry_edited_and_re_hashed_without_the_key_shows_broken(site: Site) -> None:
    hold = await site.hold()
    await site.review.reject(hold.id, "wrong recipient", "root")
    db = site.store.connection
    rows = db.execute("SELECT seq, at, event, hold_id, actor, data FROM audit ORDER BY seq")
    entries = rows.fetchall()
    [edited] = [seq for seq, _, event, *_ in entries if event == "rejected"]
    # What someone with the database can do: change who decided, then recompute every later
    # hash by the published rule. Without the key the MACs cannot be recomputed.
    prev = db.execute("SELECT prev FROM audit WHERE seq = ?", (edited,)).fetchone()[0]
    for seq, at, event, hold_id, actor, data in entries:
        if seq < edited:
            continue
        actor = "Someone else" if seq == edited else actor
        digest = legacy_digest(seq, at, event, hold_id, actor, json.loads(data), prev)
        db.execute(
            "UPDATE audit SET actor = ?, prev = ?, hash = ? WHERE seq = ?",
            (actor, prev, digest, seq),
        )
        prev = digest
    async with site.client() as client:
        await site.sign_in(client, "alice")
        page = await client.get("/audit")
    assert page.status_code == 200
    assert "Hash chain intact" not in page.text
    assert f"BROKEN at entry {edited}: was changed after it was written" in page.text
