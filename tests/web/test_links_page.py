"""A hold's secure links as the reviewer reads them, and the third decision where the portal's
address is not configured (in this process, httpx over ASGI; the configured flow runs in
Chromium in test_link_browser.py)."""

from __future__ import annotations

import pytest

from gateway.core.securelink import CodeFacts, LinkState
from gateway.store import HeldRecipient, Hold, Status
from gateway.store.links import Link
from gateway.web.links import link_rows
from gateway.web.templating import when
from web.site import Site, token

NOW = 1_800_000_000.0
DAY = 86400.0
SENT = NOW - DAY


def _link(**fields: object) -> Link:
    base: dict[str, object] = {
        "id": "LABCDEFGHIJ",
        "hold_id": "h1",
        "recipient": "parent@nosts.test",
        "token_digest": "0" * 64,
        "created_at": SENT,
        "created_by": "alice",
        "expires_at": NOW + 13 * DAY,
    }
    return Link(**{**base, **fields})  # type: ignore[arg-type]


def _hold(purged: bool = False) -> Hold:
    recipient = HeldRecipient("parent@nosts.test", "nosts.test", ("sts-no-record",))
    return Hold(
        id="h1",
        key="k",
        status=Status.LINKED,
        created_at=SENT,
        sender="head@school.test",
        recipients=(recipient,),
        mail_options=(),
        size=100,
        client="127.0.0.1",
        message_id="<m@school.test>",
        findings=("header",),
        purged_at=NOW if purged else None,
    )


CASES = [
    ("new", {}, False, LinkState.ACTIVE, "Not opened yet: no code asked for", True),
    (
        "one code",
        {"code": CodeFacts("d", NOW + 600, 0, 1, NOW - 60)},
        False,
        LinkState.ACTIVE,
        f"Not opened yet: code sent once, last on {when(NOW - 60)}",
        True,
    ),
    (
        "three codes",
        {"code": CodeFacts("d", NOW + 600, 1, 3, NOW - 60)},
        False,
        LinkState.ACTIVE,
        f"Not opened yet: code sent 3 times, last on {when(NOW - 60)}",
        True,
    ),
    (
        "opened",
        {"opened_at": NOW - 3600, "code": CodeFacts("d", 0, 0, 1, NOW - 4000)},
        False,
        LinkState.ACTIVE,
        f"Opened on {when(NOW - 3600)}",
        True,
    ),
    (
        "locked",
        {"locked_at": NOW - 10},
        False,
        LinkState.LOCKED,
        f"Locked on {when(NOW - 10)} after too many wrong codes",
        False,
    ),
    (
        "expired",
        {"expires_at": NOW - 5},
        False,
        LinkState.EXPIRED,
        f"Expired on {when(NOW - 5)}",
        False,
    ),
    (
        "revoked after opening",
        {"revoked_at": NOW - 30, "revoked_by": "bob", "opened_at": NOW - 3600},
        False,
        LinkState.REVOKED,
        f"Revoked by bob on {when(NOW - 30)} (opened on {when(NOW - 3600)})",
        False,
    ),
    (
        "purged",
        {"revoked_at": NOW - 30},
        True,
        LinkState.PURGED,
        "The message was deleted after the retention period",
        False,
    ),
]


@pytest.mark.parametrize(
    ("fields", "purged", "state", "words", "active"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_each_link_state_in_a_reviewers_words(
    fields: dict[str, object], purged: bool, state: LinkState, words: str, active: bool
) -> None:
    [row] = link_rows([_link(**fields)], _hold(purged), NOW)
    assert (row.state, row.words, row.active) == (state, words, active)


async def test_without_the_portal_address_the_page_says_what_to_configure(site: Site) -> None:
    hold = await site.hold()
    async with site.client() as client:
        await site.sign_in(client, "alice")
        page = await client.get(f"/held/{hold.id}")
        assert f'action="/held/{hold.id}/send-link"' not in page.text
        assert "it needs the portal's address, <code>[portal] public_url</code>" in page.text
        sent = await client.post(
            f"/held/{hold.id}/send-link",
            data={"csrf": token(page), "text": "no secure email", "confirmed": "yes"},
        )
        assert sent.status_code == 303
        told = (await client.get(sent.headers["location"])).text
        assert "set [portal] public_url (and enable the portal)" in told
        assert "Nothing was done." in told
    assert (await site.review.get(hold.id)).status is Status.HELD
    assert site.upstream.messages == []
