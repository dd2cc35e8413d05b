"""The review web UI in this process (httpx over ASGI): sessions, CSRF, throttling, roles,
headers, and the decisions going through the review model to a recording upstream."""

from __future__ import annotations

import re

import pytest

from gateway.accounts.users import FREE_FAILURES
from gateway.core.display import visible
from gateway.store import Status
from gateway.web.security import CSP
from web import mail
from web.site import CLIENT, METRICS_TOKEN, PASSWORD, Site, token

pytestmark = pytest.mark.asyncio


def events(entries: list, name: str) -> list:
    return [e for e in entries if e.event == name]


# --- signing in and out ----------------------------------------------------------------------


async def test_signed_out_pages_redirect_to_sign_in(site: Site) -> None:
    async with site.client() as client:
        for path in ["/", "/held", "/held/abc", "/audit", "/allowlist", "/admin/users", "/account"]:
            response = await client.get(path)
            assert response.status_code == 303, path
            assert response.headers["location"].startswith("/signin?next=")
        response = await client.get("/held?sender=head")
        assert response.headers["location"] == "/signin?next=/held%3Fsender%3Dhead"
        assert (await client.post("/signout")).headers["location"] == "/signin"
        assert (await client.get("/healthz")).text == "ok\n"
        assert (await client.get("/signin")).status_code == 200
        assert (await client.get("/static/style.css")).status_code == 200


async def test_sign_in_sets_a_fresh_strict_http_only_session(site: Site) -> None:
    async with site.client() as client:
        response = await site.sign_in(client, "alice", next_="/held")
        assert response.status_code == 303
        assert response.headers["location"] == "/held"
        cookie = next(c for c in response.headers.get_list("set-cookie") if "sg_session=" in c)
        assert "HttpOnly" in cookie
        assert "SameSite=strict" in cookie
        assert "Secure" not in cookie  # plain HTTP here
        first = client.cookies["sg_session"]
        assert (await client.get("/held")).status_code == 200
    # A session id planted in a browser before sign-in (fixation) is replaced, and dropped.
    async with site.client() as victim:
        form = await victim.get("/signin")
        victim.cookies.set("sg_session", first, domain="gateway.test")
        await victim.post(
            "/signin", data={"name": "alice", "password": PASSWORD, "csrf": token(form)}
        )
        assert victim.cookies["sg_session"] != first
        assert (await victim.get("/held")).status_code == 200
    async with site.client() as replay:
        replay.cookies.set("sg_session", first, domain="gateway.test")
        assert (await replay.get("/held")).status_code == 303


async def test_over_https_the_cookie_is_secure_and_host_only(site: Site) -> None:
    async with site.client(https=True) as client:
        response = await site.sign_in(client, "alice")
        cookie = next(c for c in response.headers.get_list("set-cookie") if "sg_session=" in c)
        assert cookie.startswith("__Host-sg_session=")
        assert "Secure" in cookie
        page = await client.get("/")
        assert page.status_code == 200
        assert page.headers["strict-transport-security"].startswith("max-age=")


async def test_after_sign_in_only_a_local_path_is_followed(site: Site) -> None:
    for target in ["https://evil.invalid/", "//evil.invalid/x", "/\\evil.invalid"]:
        async with site.client() as client:
            response = await site.sign_in(client, "alice", next_=target)
            assert response.headers["location"] == "/"


async def test_wrong_password_unknown_name_and_disabled_account(site: Site) -> None:
    site.add_user("bob")
    site.accounts.set_disabled("bob", True)
    async with site.client() as client:
        for name, password in [
            ("alice", "wrong password!"),
            ("nobody", PASSWORD),
            ("bob", PASSWORD),
        ]:
            response = await site.sign_in(client, name, password)
            assert response.status_code == 401
            assert "do not match an active account" in response.text
            assert "sg_session" not in client.cookies
    failed = events(await site.trail(), "sign-in-failed")
    assert [(e.actor, e.data["why"]) for e in failed] == [
        ("alice", "wrong-password"),
        ("(unknown account)", "unknown-account"),  # what was typed is not kept
        ("bob", "disabled"),
    ]
    assert all(e.data["client"] == CLIENT for e in failed)


async def test_sign_in_is_throttled_per_account_with_a_growing_wait(site: Site) -> None:
    async with site.client() as client:
        for _ in range(FREE_FAILURES["user"]):
            assert (await site.sign_in(client, "alice", "not the password")).status_code == 401
        # Now even the right password is not checked until the wait is over.
        refused = await site.sign_in(client, "alice")
        assert refused.status_code == 429
        assert "Wait 1 second" in refused.text
        site.clock.advance(1.5)
        assert (await site.sign_in(client, "alice", "wrong again, alas")).status_code == 401
        assert "Wait 2 seconds" in (await site.sign_in(client, "alice")).text
        site.clock.advance(2.5)
        assert (await site.sign_in(client, "alice")).status_code == 303
    throttled = [
        e for e in events(await site.trail(), "sign-in-failed") if e.data["why"] == "throttled"
    ]
    assert [e.actor for e in throttled] == ["alice", "alice"]


async def test_a_submit_account_cannot_sign_in(site: Site) -> None:
    site.add_user("scanner", "submit")  # for SMTP AUTH only
    async with site.client() as client:
        refused = await site.sign_in(client, "scanner")
        assert refused.status_code == 401
        assert "do not match an active account" in refused.text
        assert (await client.get("/held")).status_code == 303
    [failed] = events(await site.trail(), "sign-in-failed")
    assert (failed.actor, failed.data["why"]) == ("scanner", "submit-only")


async def test_sign_in_is_throttled_per_client_address(site: Site) -> None:
    async with site.client(address="198.51.100.7") as client:
        for n in range(FREE_FAILURES["addr"]):
            await site.sign_in(client, f"guess{n}", "whatever it is")
        assert (await site.sign_in(client, "alice")).status_code == 429
    async with site.client(address="198.51.100.8") as other:
        assert (await site.sign_in(other, "alice")).status_code == 303


async def test_sign_out_ends_the_session(site: Site) -> None:
    async with site.client() as client:
        await site.sign_in(client, "alice")
        cookie = client.cookies["sg_session"]
        page = await client.get("/")
        response = await client.post("/signout", data={"csrf": token(page)})
        assert response.headers["location"] == "/signin?out=1"
        assert "You have signed out" in (await client.get("/signin?out=1")).text
    async with site.client() as replay:
        replay.cookies.set("sg_session", cookie, domain="gateway.test")
        assert (await replay.get("/")).status_code == 303
    assert [e.actor for e in events(await site.trail(), "signed-out")] == ["alice"]


async def test_sessions_end_when_idle_or_old(site: Site) -> None:
    async with site.client() as client:
        await site.sign_in(client, "alice")
        site.clock.advance(50 * 60)
        assert (await client.get("/")).status_code == 200  # idle < 1 h
        site.clock.advance(61 * 60)
        assert (await client.get("/")).status_code == 303
        await site.sign_in(client, "alice")
        for _ in range(9):  # active all along, but 8 h after sign-in it ends
            site.clock.advance(55 * 60)
            response = await client.get("/")
        assert response.status_code == 303


async def test_disabling_an_account_ends_its_sessions(site: Site) -> None:
    async with site.client() as alice, site.client() as root:
        await site.sign_in(alice, "alice")
        await site.sign_in(root, "root")
        page = await root.get("/admin/users")
        response = await root.post("/admin/users/alice/disable", data={"csrf": token(page)})
        assert response.status_code == 303
        assert (await alice.get("/")).status_code == 303
        assert "alice: disabled" in (await root.get("/admin/users")).text
    [entry] = events(await site.trail(), "user-disabled")
    assert (entry.actor, entry.data["user"]) == ("root", "alice")


# --- CSRF, roles, headers ---------------------------------------------------------------------


async def test_a_post_without_the_csrf_token_is_refused(site: Site) -> None:
    hold = await site.hold()
    async with site.client() as client:
        await site.sign_in(client, "alice")
        page = await client.get(f"/held/{hold.id}")
        good = token(page)
        form = {"text": "Confirmed by phone", "confirmed": "yes"}
        for data, headers in [
            (form, {}),
            ({**form, "csrf": "x" * len(good)}, {}),
            ({**form, "csrf": good}, {"origin": "https://evil.invalid"}),
        ]:
            response = await client.post(f"/held/{hold.id}/reject", data=data, headers=headers)
            assert response.status_code == 403
            assert "nothing was done" in response.text
        assert (await site.review.get(hold.id)).status is Status.HELD
        ok = await client.post(f"/held/{hold.id}/reject", data={**form, "csrf": good})
        assert ok.status_code == 303
    assert (await site.review.get(hold.id)).status is Status.REJECTED


async def test_the_sign_in_form_needs_its_own_token(site: Site) -> None:
    async with site.client() as client:
        response = await client.post("/signin", data={"name": "alice", "password": PASSWORD})
        assert response.status_code == 400
        assert "sg_session" not in client.cookies


async def test_a_reviewer_cannot_reach_admin_pages(site: Site) -> None:
    async with site.client() as client:
        await site.sign_in(client, "alice")
        page = await client.get("/")
        assert 'href="/admin/users"' not in page.text
        assert (await client.get("/admin/users")).status_code == 403
        response = await client.post(
            "/admin/users",
            data={
                "csrf": token(page),
                "name": "mallory",
                "role": "admin",
                "password": PASSWORD,
                "again": PASSWORD,
            },
        )
        assert response.status_code == 403
    assert site.accounts.get("mallory") is None


async def test_an_admin_adds_an_account(site: Site) -> None:
    async with site.client() as client:
        await site.sign_in(client, "root")
        page = await client.get("/admin/users")
        form = {"csrf": token(page), "name": "Jo.Smith", "role": "reviewer"}
        short = await client.post(
            "/admin/users", data={**form, "password": "short", "again": "short"}
        )
        assert "at least 12 characters" in (await client.get(short.headers["location"])).text
        await client.post("/admin/users", data={**form, "password": PASSWORD, "again": PASSWORD})
        assert "Added jo.smith (reviewer)" in (await client.get("/admin/users")).text
    [entry] = events(await site.trail(), "user-added")
    assert (entry.actor, entry.data) == ("root", {"user": "jo.smith", "role": "reviewer"})


async def test_every_page_carries_the_security_headers(site: Site) -> None:
    hold = await site.hold()
    async with site.client() as client:
        await site.sign_in(client, "alice")
        for path in ["/signin", "/", "/held", f"/held/{hold.id}", "/audit", "/nope", "/healthz"]:
            response = await client.get(path)
            assert response.headers["content-security-policy"] == CSP, path
            assert "frame-ancestors 'none'" in CSP
            assert response.headers["x-frame-options"] == "DENY"
            assert response.headers["referrer-policy"] == "no-referrer"
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["cache-control"] == "no-store"


async def test_large_and_unmeasured_bodies_are_refused(site: Site) -> None:
    async with site.client() as client:
        response = await client.post("/signin", content=b"x" * 300_000)
        assert response.status_code == 413


# --- reviewing -----------------------------------------------------------------------------------


async def test_queue_filters(site: Site) -> None:
    await site.hold(sender="head@school.test", to=("a@nosts.test",))
    site.clock.advance(2 * 3600)
    await site.hold(
        sender="teacher@school.test", to=("b@unlisted.test",), reasons=("not-allowlisted",)
    )
    async with site.client() as client:
        await site.sign_in(client, "alice")

        async def rows(query: str) -> list[str]:
            page = await client.get(f"/held?{query}")
            return re.findall(r'<span class="address">([^<]+)</span>', page.text)

        assert await rows("") == ["a@nosts.test", "b@unlisted.test"]  # oldest first
        assert await rows("sort=newest") == ["b@unlisted.test", "a@nosts.test"]
        assert await rows("sender=TEACHER") == ["b@unlisted.test"]
        assert await rows("domain=nosts.test") == ["a@nosts.test"]
        assert await rows("reason=not-allowlisted") == ["b@unlisted.test"]
        assert await rows("age=gt1h") == ["a@nosts.test"]
        assert await rows("age=lt1h") == ["b@unlisted.test"]
        assert await rows("status=released") == []


async def test_message_page_escapes_everything_and_records_the_view(site: Site) -> None:
    hold = await site.hold(mail.script_message(), subject=mail.SCRIPT_SUBJECT)
    async with site.client() as client:
        await site.sign_in(client, "alice")
        page = await client.get(f"/held/{hold.id}")
        queue = await client.get("/held")
    for text in (page.text, queue.text):
        assert "<script" not in text
        assert "<img src=x" not in text
        assert "<iframe" not in text
    assert "&lt;script&gt;window.__xss=&#39;subject&#39;" in page.text
    assert "&lt;script&gt;window.__xss=&#39;body&#39;" in page.text
    assert "\\u202egpj.exe" in page.text  # the bidi override is shown, not obeyed
    [viewed] = events(await site.trail(), "viewed")
    assert (viewed.hold_id, viewed.actor) == (hold.id, "alice")


async def test_an_html_only_body_is_shown_as_text(site: Site) -> None:
    hold = await site.hold(mail.html_only_message())
    async with site.client() as client:
        await site.sign_in(client, "alice")
        page = await client.get(f"/held/{hold.id}")
    assert "HTML shown as plain text" in page.text
    assert "Rich text" in page.text
    assert "__xss" not in page.text  # the script's text is dropped with the script
    assert "tracker.invalid" not in page.text


async def test_attachment_download_is_inert_and_audited(site: Site) -> None:
    hold = await site.hold(mail.script_message())
    async with site.client() as client:
        await site.sign_in(client, "alice")
        page = await client.get(f"/held/{hold.id}")
        [link] = re.findall(rf'href="(/held/{hold.id}/attachments/\d+)"', page.text)
        response = await client.get(link)
    assert response.content == mail.SCRIPT_ATTACHMENT
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["x-content-type-options"] == "nosniff"
    disposition = response.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="')
    assert "filename*=UTF-8''" in disposition
    assert "<" not in disposition
    assert '"><' not in disposition
    assert "%E2%80%AE" not in disposition  # the bidi override is dropped
    assert "sandbox" in response.headers["content-security-policy"]
    [entry] = events(await site.trail(), "attachment-downloaded")
    assert (entry.hold_id, entry.actor, entry.data["size"]) == (hold.id, "alice", 42)
    # Which file left the hold, by its name as the page shows it: the bidi override written
    # as an escape, never obeyed.
    assert entry.data["filename"] == visible(mail.SCRIPT_FILENAME)
    assert "\\u202egpj.exe" in entry.data["filename"]
    assert "\u202e" not in entry.data["filename"]


async def test_release_needs_a_rationale_and_a_confirmation(site: Site) -> None:
    hold = await site.hold()
    async with site.client() as client:
        await site.sign_in(client, "alice")
        csrf = token(await client.get(f"/held/{hold.id}"))
        empty = await client.post(f"/held/{hold.id}/release", data={"csrf": csrf, "text": "  "})
        assert empty.status_code == 400
        assert "needs a written rationale" in empty.text
        confirm = await client.post(
            f"/held/{hold.id}/release", data={"csrf": csrf, "text": "DSL confirmed by phone"}
        )
        assert confirm.status_code == 200
        assert "What the sender will be told" in confirm.text
        assert "was reviewed and released by alice" in confirm.text
        assert site.upstream.messages == []
        assert (await site.review.get(hold.id)).status is Status.HELD
        done = await client.post(
            f"/held/{hold.id}/release",
            data={"csrf": csrf, "text": "DSL confirmed by phone", "confirmed": "yes"},
        )
        assert done.status_code == 303
        page = await client.get(done.headers["location"])
        assert "Released: sent to officer@nosts.test" in page.text
    released = await site.review.get(hold.id)
    assert released.status is Status.RELEASED
    assert released.decided_by == "alice"
    relayed = [m for m in site.upstream.messages if m.rcpt_tos == ("officer@nosts.test",)]
    assert len(relayed) == 1
    notices = [m for m in site.upstream.messages if m.rcpt_tos == ("head@school.test",)]
    assert len(notices) == 1
    assert b"released by alice" in notices[0].data
    trail = await site.trail()
    assert [e.actor for e in events(trail, "release-requested")] == ["alice"]
    assert events(trail, "released")[0].data["rationale"] == "DSL confirmed by phone"


async def test_reject_shows_the_reason_the_sender_gets(site: Site) -> None:
    hold = await site.hold()
    async with site.client() as client:
        await site.sign_in(client, "alice")
        csrf = token(await client.get(f"/held/{hold.id}"))
        reason = "Please use the council's secure portal <https://portal.example>"
        confirm = await client.post(f"/held/{hold.id}/reject", data={"csrf": csrf, "text": reason})
        assert (
            "Reason: Please use the council&#39;s secure portal &lt;https://portal.example&gt;"
            in confirm.text
        )
        await client.post(
            f"/held/{hold.id}/reject", data={"csrf": csrf, "text": reason, "confirmed": "yes"}
        )
        again = await client.post(
            f"/held/{hold.id}/reject", data={"csrf": csrf, "text": reason, "confirmed": "yes"}
        )
        assert "already rejected" in (await client.get(again.headers["location"])).text
    [entry] = events(await site.trail(), "rejected")
    assert (entry.actor, entry.data["reason"]) == ("alice", reason)
    [notice] = [m for m in site.upstream.messages if m.rcpt_tos == ("head@school.test",)]
    assert reason.encode() in notice.data


async def test_dashboard_counts(site: Site) -> None:
    old = await site.hold()
    site.clock.advance(5 * 3600)
    await site.hold()
    released = await site.hold()
    await site.review.release(released.id, "fine", "root")
    async with site.client() as client:
        await site.sign_in(client, "alice")
        page = (await client.get("/")).text
    assert re.search(r'id="count-held">2<', page)
    assert re.search(r'id="count-released">1<', page)
    assert re.search(r'id="count-rejected">0<', page)
    assert re.search(r'id="oldest">5 h<', page)
    assert f'href="/held/{old.id}"' in page


async def test_audit_search(site: Site) -> None:
    hold = await site.hold()
    await site.review.reject(hold.id, "wrong recipient", "root")
    async with site.client() as client:
        await site.sign_in(client, "alice")
        page = await client.get("/audit?q=wrong+recipient")
        assert page.status_code == 200
        assert "Hash chain intact" in page.text
        assert page.text.count('class="event event-') == 1
        by_hold = await client.get(f"/audit?hold={hold.id}")
        assert by_hold.text.count('class="event event-') == 2  # held, rejected
        by_event = await client.get("/audit?event=signed-in")
        assert by_event.text.count('class="event event-signed-in"') == 1


async def test_metrics_need_a_session_or_the_token(site: Site) -> None:
    await site.hold()
    async with site.client() as client:
        assert (await client.get("/metrics")).status_code == 303
        wrong = await client.get("/metrics", headers={"authorization": "Bearer nope"})
        assert wrong.status_code == 401
        scraped = await client.get("/metrics", headers={"authorization": f"Bearer {METRICS_TOKEN}"})
        assert scraped.status_code == 200
        assert scraped.headers["content-type"].startswith("text/plain; version=0.0.4")
        assert "gateway_holds_awaiting_review 1.0" in scraped.text
        assert "gateway_queue_depth 0.0" in scraped.text  # nothing waits for direct delivery
        assert 'gateway_queue_deliveries_total{outcome="held"}' in scraped.text
        for name in [
            "gateway_messages_total",
            "gateway_review_decisions_total",
            "gateway_posture_check_seconds",
            "gateway_policy_cache_lookups_total",
        ]:
            assert f"# TYPE {name.removesuffix('_total')}" in scraped.text
        await site.sign_in(client, "alice")
        assert (await client.get("/metrics")).status_code == 200


async def test_own_password_change(site: Site) -> None:
    new = "a much longer passphrase"
    async with site.client() as client, site.client() as other:
        await site.sign_in(client, "alice")
        await site.sign_in(other, "alice")
        csrf = token(await client.get("/account"))
        wrong = await client.post(
            "/account/password",
            data={"csrf": csrf, "current": "nope", "password": new, "again": new},
        )
        assert "was not right" in (await client.get(wrong.headers["location"])).text
        await client.post(
            "/account/password",
            data={"csrf": csrf, "current": PASSWORD, "password": new, "again": new},
        )
        assert (await client.get("/")).status_code == 200  # this session stays
        assert (await other.get("/")).status_code == 303  # the others end
    assert site.accounts.password_is("alice", new)
