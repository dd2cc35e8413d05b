"""The web UI refuses a rationale or reason with nothing visible in it, as the command line
does (the one check is the review model's): it asks again, and nothing is decided."""

from __future__ import annotations

import pytest

from gateway.store import Status
from web.site import Site, token

INVISIBLE = ["\u200b", "\x00", "\ufeff\u202e \u2060", "\u200c\u200d\r\n"]


@pytest.mark.parametrize("action", ["release", "reject"])
@pytest.mark.parametrize("text", INVISIBLE, ids=["zwsp", "nul", "marks", "joiners"])
async def test_an_invisible_rationale_or_reason_is_asked_for_again(
    site: Site, action: str, text: str
) -> None:
    hold = await site.hold()
    async with site.client() as client:
        await site.sign_in(client, "alice")
        csrf = token(await client.get(f"/held/{hold.id}"))
        # Once: a confirmation page, and then a decision with an empty-looking record.
        for form in ({"text": text}, {"text": text, "confirmed": "yes"}):
            asked = await client.post(f"/held/{hold.id}/{action}", data={"csrf": csrf, **form})
            assert asked.status_code == 400, asked.text
            assert "needs a written rationale" in asked.text or "needs a reason" in asked.text
    assert (await site.review.get(hold.id)).status is Status.HELD
    assert site.upstream.messages == []
