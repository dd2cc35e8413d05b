"""A hold the delivery queue made when it gave up on the recipients' own MX hosts: the page
with the release form and `gateway held show` say that a release goes through the smarthost,
how it is protected, and which MX host failed how."""

from __future__ import annotations

import pytest

from gateway.cli.held import show_hold
from gateway.config.settings import RelaySettings
from gateway.config.values import RelayTls
from gateway.review.route import release_route
from gateway.store import HoldFacts
from web.site import Site

TO = "officer@partner.test"
HOSTS = (
    "mx1.partner.test [127.0.0.11]: no STARTTLS offered",
    "mx2.partner.test [127.0.0.12]: certificate does not name mx2.partner.test",
)


@pytest.mark.parametrize(
    ("relay", "said"),
    [
        (
            RelaySettings(host="relay.school.test", port=587, tls=RelayTls.STARTTLS),
            "A release goes through the smarthost (relay.school.test:587, TLS: starttls, "
            "certificate verified for relay.school.test)",
        ),
        (
            RelaySettings(host="10.0.0.5", port=465, tls=RelayTls.IMPLICIT, tls_name="mx.test"),
            "A release goes through the smarthost (10.0.0.5:465, TLS: implicit, "
            "certificate verified for mx.test)",
        ),
        (
            RelaySettings(host="::1", port=25),
            "A release goes through the smarthost ([::1]:25, TLS: none, certificate not verified)",
        ),
    ],
)
def test_the_route_in_plain_words(relay: RelaySettings, said: str) -> None:
    assert release_route(relay) == said


@pytest.mark.parametrize("reason", ["delivery-tls-failed", "delivery-failed"])
async def test_a_give_up_hold_says_how_a_release_is_sent(
    site: Site, reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    facts = HoldFacts((), {}, {TO: HOSTS})
    hold = await site.hold(to=(TO,), reasons=(reason,), facts=facts)
    route = release_route(site.settings.relay)
    async with site.client() as client:
        await site.sign_in(client, "alice")
        page = (await client.get(f"/held/{hold.id}")).text
    assert f'id="release-route">{route}, not to their own mail servers' in page
    for host in HOSTS:
        assert host in page

    class Args:
        hold_id, json, by = hold.id, False, "alice"

    assert await show_hold(site.review, Args()) == 0  # type: ignore[arg-type]
    shown = capsys.readouterr().out
    assert f"{route}." in shown
    for host in HOSTS:
        assert f"  {host}" in shown


async def test_other_holds_do_not_mention_the_route(site: Site) -> None:
    hold = await site.hold()
    async with site.client() as client:
        await site.sign_in(client, "alice")
        page = (await client.get(f"/held/{hold.id}")).text
    assert "release-route" not in page
    assert site.review.release_route(hold) == ""
