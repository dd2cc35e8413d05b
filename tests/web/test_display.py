"""Addresses and names from mail are shown, never obeyed: a bidi override or a zero-width
character in a sender, a recipient or an attachment's name is written out as an escape on every
page that shows it (the same function as the CLI, gateway.core.display.visible)."""

from __future__ import annotations

from web import mail
from web.site import Site, token

# U+202E makes "pupil<RLO>gpj.exe" read as "pupilexe.jpg"; U+200B and U+2066 are invisible.
SENDER = "pupil\u202egpj.exe@school.test"
RECIPIENT = "officer\u200b\u2066@nosts.test"
FILENAME = "report\u202efdp.exe"
HIDDEN = ("\u202e", "\u200b", "\u2066")


async def test_pages_show_bidi_and_zero_width_characters_escaped(site: Site) -> None:
    raw = mail.message(
        sender=SENDER, to=(RECIPIENT,), attachments=[(FILENAME, "application/pdf", b"%PDF")]
    )
    hold = await site.hold(raw, sender=SENDER, to=(RECIPIENT,))
    async with site.client() as client:
        await site.sign_in(client, "alice")
        message = await client.get(f"/held/{hold.id}")
        pages = [message, await client.get("/held"), await client.get("/")]
        pages.append(
            await client.post(
                f"/held/{hold.id}/release",
                data={"csrf": token(message), "text": "DSL confirmed by phone"},
            )
        )
    for page in pages:
        assert page.status_code == 200, page.text
        assert not any(ch in page.text for ch in HIDDEN), (page.url, page.text)
        assert "pupil\\u202egpj.exe@school.test" in page.text, page.url
        assert "officer\\u200b\\u2066@nosts.test" in page.text, page.url
    assert "report\\u202efdp.exe" in message.text
