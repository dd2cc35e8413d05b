"""Long records stay readable in Chromium: a message to a hundred people is a few lines on the
queue, hold, tracking and dashboard pages, the rest folded ("and 97 more recipients"), and
the audit trail reads as sentences with each entry's facts folded under "Details". Nothing
is lost: every address and fact is one click away. The same live gateway as test_browser.py.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from rig.heldcli import proofs
from web import mail
from web.test_browser import (  # the same live gateway, browser and helpers
    Live,
    _backdate,
    browser,
    context,
    live,
    page,
    shot,
    sign_in,
    watched,
)

__all__ = ["browser", "context", "live", "page", "watched"]

pytestmark = pytest.mark.e2e

HUNDRED = [f"pupil.parent{n:03}@nosts.test" for n in range(100)]
SECURE = "colleague@secure.test"
# Without folding, this hold made the queue page 7,991 px tall, the hold page 11,445 and its
# tracking page 4,017 (1280 px wide); folded they measure 1,112, 2,393 and 1,231. The bounds
# leave room for fonts and the page's other rows, not for a hundred addresses.
TALLEST = {"/held": 1800, "/": 1400, "/held/{id}": 3000, "/tracking/{id}": 1800}


def _mass_hold(live: Live) -> str:
    if "mass" not in live.holds:
        raw = mail.message(to=HUNDRED, subject="[SECURE] Letter to every parent of Year 4")
        reply = live.gateway.send("head@school.test", HUNDRED, raw)
        assert reply.code == 250, reply
        found = re.search(r"held for review as ([0-9a-f]+)", reply.text)
        assert found, reply
        live.holds["mass"] = found.group(1)
        _backdate(live.gateway, live.holds["mass"], 2 * 86400)  # the dashboard lists it first
    return live.holds["mass"]


def _height(page: Page) -> int:
    return int(page.evaluate("document.body.scrollHeight"))


@pytest.mark.parametrize("path", list(TALLEST))
def test_a_hundred_recipients_fold_to_a_few_lines(page: Page, live: Live, path: str) -> None:
    hold = _mass_hold(live)
    sign_in(page, live, "alice", path.format(id=hold))
    assert _height(page) < TALLEST[path], (path, _height(page))
    more = page.locator("details.more", has_text="and 97 more recipients").first
    if path == "/tracking/{id}":  # each recipient's outcome: the first five shown
        more = page.locator("details.more", has_text="and 95 more recipients").first
    expect(more).to_be_visible()
    expect(more).not_to_have_attribute("open", "")
    last = HUNDRED[-1]
    expect(more.get_by_text(last)).to_be_hidden()
    shot(page, "fold" + re.sub(r"\W+", "-", path).rstrip("-"), full_page=True)
    more.locator("summary").click()  # nothing is lost: one click shows every address
    expect(more.get_by_text(last, exact=False).first).to_be_visible()


def test_the_tracking_search_folds_the_recipients(page: Page, live: Live) -> None:
    _mass_hold(live)
    sign_in(page, live, "alice", "/tracking?recipient=pupil.parent099%40nosts.test")
    row = page.locator("#tracking tbody tr")
    expect(row).to_have_count(1)
    expect(row.locator("details.more summary")).to_have_text("and 97 more recipients")
    assert _height(page) < 1600, _height(page)


def test_the_trail_reads_as_sentences_with_the_facts_folded(page: Page, live: Live) -> None:
    raw = mail.message(to=[SECURE], subject="[SECURE] Case conference minutes")
    assert live.gateway.send("head@school.test", [SECURE], raw).code == 250
    mid = raw.split(b"Message-ID: ", 1)[1].split(b"\r\n", 1)[0].decode()
    assert proofs(live.gateway, mid), live.gateway.proc.output()
    referral = live.holds["referral"]
    sign_in(page, live, "alice", f"/held/{referral}")
    with page.expect_download() as download:
        page.click("#attachments a:has-text('Download')")
    assert download.value.suggested_filename == "Referral form J.pdf"

    page.goto(live.url("/audit"))
    table = page.locator("table.audit tbody")
    relayed = table.locator("tr", has=page.locator(".event-relayed")).first
    expect(relayed.locator(".sentence")).to_have_text(
        f"Relayed at once to {SECURE} over MTA-STS-enforced TLS"
    )
    details = relayed.locator("details.folded")
    expect(details).not_to_have_attribute("open", "")
    facts = details.locator("dl.details")
    expect(facts).to_be_hidden()  # the facts JSON is folded away ...
    details.locator("summary").click()
    expect(facts).to_be_visible()  # ... and one click away
    expect(facts).to_contain_text('"transport": "mta-sts-enforce"')

    downloaded = table.locator("tr", has=page.locator(".event-attachment-downloaded")).first
    expect(downloaded.locator(".sentence")).to_have_text(
        re.compile(r"^Attachment Referral form J\.pdf \(\d+ bytes\) downloaded by alice$")
    )
    shot(page, "fold-audit", full_page=True)
    # Every entry is a sentence: none shows its raw fields unfolded.
    sentences = table.locator("td .sentence")
    expect(sentences).to_have_count(table.locator("tr").count())
    assert not page.locator("table.audit td > dl").count()
