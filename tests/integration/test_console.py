"""The operator console against real services (issue 21): sign-in with signed actor tokens and one-time links,
who may look and who may act, CSRF, the read-only switch, the audit, and each page's content from data made
by running commands through the worker and the notifier."""

from __future__ import annotations

import asyncio
import re
import sys
import uuid
from datetime import timedelta

import aiohttp

from tests.helpers.brokers import new_broker
from tests.helpers.browser import ConsoleClient, console_settings, running_console, token
from tests.helpers.cli import ok, run_cli_async, settings_env
from tests.helpers.commands import change, override
from tests.helpers.database import fetch, fetchval, seed
from tests.helpers.producing import produce
from tests.helpers.services import running_notifier, running_worker
from tests.helpers.topics import TopicReader, events_for
from tests.helpers.waiting import wait_until


def position(record) -> str:
    return f"{record.partition}:{record.offset}"


async def audit_rows(settings) -> list:
    return await fetch(settings, "SELECT actor_sub, actor_role, action, target, count, result FROM console_audit "
                                 "ORDER BY id")


class TestSignIn:
    async def test_a_manager_token_opens_a_session_in_an_httponly_strict_cookie_that_expires_with_it(
            self, settings, tmp_path):
        """A valid manager token: 303 to the console, a cookie HttpOnly, SameSite=Strict, not Secure over plain
        HTTP, with a Max-Age that ends with the token; the cookie holds no token and the database only its hash."""
        s = console_settings(settings, tmp_path)
        await seed(s)
        manager = token("manager", name="Mia", ttl=timedelta(minutes=20))
        async with running_console(s) as base, ConsoleClient(base) as client:
            response = await client.sign_in(manager)
            assert response.status == 303 and response.headers["Location"] == "/orders"
            cookie = response.headers["Set-Cookie"]
            assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" not in cookie
            max_age = int(re.search(r"Max-Age=(\d+)", cookie).group(1))
            assert 20 * 60 - 30 <= max_age <= 20 * 60
            value = re.search(r"orderstatus_console=([^;]+)", cookie).group(1)
            assert value not in manager and "." not in value  # a random id, not the JWT
            [row] = await fetch(s, "SELECT id_sha256, sub, role, name FROM console_sessions")
            assert (row["sub"], row["role"], row["name"]) == ("manager-1", "manager", "Mia")
            assert row["id_sha256"] != value
            status, page = await client.get("/orders")
            assert status == 200 and "Mia · <strong>manager</strong>" in page

    async def test_a_session_ends_with_its_token_and_at_sign_out(self, settings, tmp_path):
        """A session made from a token that expires in seconds is refused once it has (the page redirects to
        the sign-in page); signing out deletes the session row and the old cookie no longer opens a page."""
        s = console_settings(settings, tmp_path)
        await seed(s)
        async with running_console(s) as base, ConsoleClient(base) as short, ConsoleClient(base) as leaving:
            await short.sign_in(token("staff", ttl=timedelta(seconds=3)))
            assert (await short.get("/orders"))[0] == 200

            async def expired() -> bool:
                return (await short.get("/orders"))[0] == 303

            await wait_until(expired, 20, "the short session to expire", interval=0.5)
            await leaving.sign_in(token("manager", sub="manager-7"))
            cookie = next(c.value for c in leaving.http.cookie_jar if c.key == "orderstatus_console")
            status, _ = await leaving.post("/sign-out", {"csrf": await leaving.csrf()})
            assert status == 303
            assert await fetchval(s, "SELECT count(*) FROM console_sessions WHERE sub = 'manager-7'") == 0
            async with ConsoleClient(base) as replay:
                replay.http.cookie_jar.update_cookies({"orderstatus_console": cookie})
                assert (await replay.get("/orders"))[0] == 303

    async def test_a_client_token_a_forged_one_and_no_session_are_kept_out(self, settings, tmp_path):
        """A client's token is refused (403), a token signed by another key is refused (401), and a page without
        a session redirects to the sign-in page (a POST without one is 401)."""
        from service.runtime.auth import issue_token, new_key_pair

        s = console_settings(settings, tmp_path)
        await seed(s)
        forged = issue_token(new_key_pair()[0], sub="m-9", role="manager", issuer="https://id.example.com",
                             audience="orderstatus")
        async with running_console(s) as base, ConsoleClient(base) as client:
            assert (await client.sign_in(token("client"))).status == 403
            assert (await client.sign_in(forged)).status == 401
            status, _ = await client.get("/orders/1029")
            assert status == 303
            status, _ = await client.post("/outbox/retry", {"id": "1", "step": "confirm"})
            assert status == 401
        assert await fetchval(s, "SELECT count(*) FROM console_sessions") == 0

    async def test_a_one_time_link_signs_in_once(self, settings, tmp_path):
        """`orderstatus console link` prints a link; its page only shows a button (GET spends nothing), the
        POST signs in as the token's principal, and the same code a second time is refused."""
        s = console_settings(settings, tmp_path)
        await seed(s)
        env = {**settings_env(s), "ORDERSTATUS_AUTH_PUBLIC_KEYS": s.auth_public_keys,
               "ORDERSTATUS_AUTH_ISSUER": s.auth_issuer, "ORDERSTATUS_AUTH_AUDIENCE": s.auth_audience,
               "ORDERSTATUS_CONSOLE_PORT": str(s.console_port)}
        result = ok(await run_cli_async(env, "console", "link", input=token("staff", name="Sam")))
        link = result.stdout.strip()
        assert link.startswith(f"http://127.0.0.1:{s.console_port}/sign-in/link?code=")
        code = link.partition("code=")[2]
        assert await fetchval(s, "SELECT count(*) FROM console_sign_in_links") == 1
        async with running_console(s) as base, ConsoleClient(base) as client:
            status, page = await client.get(link.removeprefix(base))
            assert status == 200 and code in page
            assert await fetchval(s, "SELECT count(*) FROM console_sign_in_links") == 1
            status, _ = await client.post("/sign-in/link", {"code": code})
            assert status == 303
            status, page = await client.get("/orders")
            assert status == 200 and "Sam · <strong>staff</strong>" in page
        async with running_console(s) as base, ConsoleClient(base) as again:
            status, _ = await again.post("/sign-in/link", {"code": code})
            assert status == 401


class TestActions:
    async def test_staff_sees_no_action_and_a_forged_post_is_refused(self, settings, tmp_path):
        """Staff pages carry no action form, and a POST staff makes anyway (with its valid CSRF token) is 403
        and changes nothing; nothing is audited."""
        s = console_settings(settings, tmp_path)
        await seed(s)
        async with running_console(s) as base, ConsoleClient(base) as staff:
            await staff.sign_in(token("staff"))
            for path in ("/orders/1029", "/outbox", "/dead-letters"):
                status, page = await staff.get(path)
                assert status == 200 and "/emails/resend" not in page and "Preview" not in page, path
            csrf = await staff.csrf()
            status, page = await staff.post("/outbox/retry", {"csrf": csrf, "id": "1", "step": "confirm"})
            assert status == 403 and "may look but not act" in page
            status, _ = await staff.post("/dead-letters/redrive", {"csrf": csrf, "position": "0:0", "step": "confirm"})
            assert status == 403
        assert await audit_rows(s) == []

    async def test_staff_gets_the_dead_letters_without_a_post_form(self, settings, tmp_path):
        """With a dead letter listed, staff's Dead letters page has the table but no POST form in its main part (no
        empty form with a lone CSRF token); a manager's has the redrive form."""
        s = console_settings(settings, tmp_path)
        await seed(s)
        async with running_worker(s), TopicReader(s, s.dlq_topic) as dlq:
            await produce(s, [b"not json"], key="1030")
            await dlq.wait_for(lambda _: dlq.records, timeout=30, what="the dead letter")
        [letter] = dlq.records
        listed = f'href="/dead-letters/{letter.partition}/{letter.offset}"'
        async with running_console(s) as base, ConsoleClient(base) as staff, ConsoleClient(base) as manager:
            await staff.sign_in(token("staff"))
            await manager.sign_in(token("manager"))

            async def main_part(client: ConsoleClient) -> str:
                page = (await client.get("/dead-letters"))[1]
                return page.split("<main", 1)[1].split("</main>", 1)[0]

            async def indexed() -> bool:
                return listed in await main_part(staff)

            await wait_until(indexed, 30, "the console's indexer to list the dead letter")
            staff_main, manager_main = await main_part(staff), await main_part(manager)
        assert listed in staff_main and 'method="post"' not in staff_main and 'name="csrf"' not in staff_main
        assert '<form method="post" action="/dead-letters/redrive">' in manager_main

    async def test_an_action_without_its_csrf_token_is_refused(self, settings, tmp_path):
        """A manager's POST without the CSRF token, or with another session's, is 403 and audits nothing."""
        s = console_settings(settings, tmp_path)
        await seed(s)
        async with running_console(s) as base, ConsoleClient(base) as manager, ConsoleClient(base) as other:
            await manager.sign_in(token("manager"))
            await other.sign_in(token("manager", sub="manager-2"))
            foreign = await other.csrf()
            for data in ({"id": "1", "step": "confirm"}, {"csrf": foreign, "id": "1", "step": "confirm"}):
                status, page = await manager.post("/outbox/retry", data)
                assert status == 403 and "CSRF" in page
        assert await audit_rows(s) == []

    async def test_read_only_removes_every_action_for_everyone(self, settings, tmp_path):
        """With ORDERSTATUS_CONSOLE_READ_ONLY a manager sees no action form and its POSTs are refused (403)."""
        s = console_settings(settings, tmp_path, console_read_only=True)
        await seed(s)
        async with running_console(s) as base, ConsoleClient(base) as manager:
            await manager.sign_in(token("manager"))
            status, page = await manager.get("/outbox")
            assert status == 200 and "read-only console" in page
            status, page = await manager.get("/orders/1029")
            assert "/emails/resend" not in page
            csrf = await manager.csrf()
            status, page = await manager.post("/outbox/retry", {"csrf": csrf, "id": "1", "step": "confirm"})
            assert status == 403 and "read-only" in page
        assert await audit_rows(s) == []


class TestPages:
    async def test_the_order_page_shows_the_timeline_emails_rejections_and_next_statuses(
            self, settings, tmp_path, mailbox):
        """After a change with a private note and a refused command through the worker (and the notifier's
        emails), the order page, found by the command id, shows the change newest first with its actor,
        note, ids and emails, the rejection with reason and message, and R13's next statuses per role; the order
        is found by either command id and by either event id, an unknown id finds nothing."""
        s = console_settings(settings, tmp_path)
        await seed(s)
        applied = change(1029, "ReadyToShip", note={"text": "stock checked by hand", "is_public": False},
                         actor={"id": "staff-1", "role": "staff", "name": "Sam"})
        refused = change(1029, "Completed")
        async with running_worker(s), running_notifier(s), TopicReader(s, s.events_topic) as events:
            await produce(s, [applied, refused])
            outcomes = await events_for(events, {applied["command_id"], refused["command_id"]}, timeout=30)
            await wait_until(lambda: _emails_recorded(s), 30, "the emails to be recorded")
            async with running_console(s) as base, ConsoleClient(base) as client:
                await client.sign_in(token("staff"))
                # by the change's command id, its event id, and the refused command's id (its rejection event)
                for q in [applied["command_id"], refused["command_id"]] + [e["event_id"] for e in outcomes]:
                    async with client.http.get(f"{base}/orders", params={"q": q}, allow_redirects=False) as found:
                        assert (found.status, found.headers.get("Location")) == (303, "/orders/1029"), q
                status, nothing = await client.get(f"/orders?q={uuid.uuid4()}")
                assert status == 200 and "Nothing matches" in nothing
                status, page = await client.get("/orders/1029")
                assert status == 200
                assert "Confirmed → Ready to ship" in page and "stock checked by hand" in page
                assert "private note" in page and applied["command_id"] in page
                assert "ann@example.com" in page and "pm@example.com" in page
                assert page.count('class="mail-sent">sent') == 2
                assert "transition_not_allowed" in page and refused["command_id"] in page
                assert page.index("Rejected commands") < page.index("transition_not_allowed")
                assert re.search(r'data-status-id="5"\]', page)  # the current status is marked on the diagram
                assert "Dispatched (6)" in page  # staff may move it on to Dispatched
                _, as_client = await client.get("/orders/1029?role=client")
                assert "no change allowed" in as_client
                status, listing = await client.get("/orders?q=c-1")
                assert status == 200 and "/orders/1029" in listing and "/orders/1030" in listing

    async def test_the_timeline_and_the_read_api_name_an_actor_by_its_verified_name(self, settings, tmp_path):
        """A change signed by a token named Sam and an override signed by one named Mia keep those names in the
        history; a change between them whose command merely asserts a name has none. The console's timeline shows
        "Sam (staff, staff-1)", the read API shows staff the whole actor and the order's client the role and name."""
        from service.devkit.embedded import free_port

        s = console_settings(settings, tmp_path)
        await seed(s)
        worker = s.model_copy(update={"actor_auth": "optional", "http_port": free_port()})
        signed = change(1029, "ReadyToShip")
        unsigned = change(1029, "Dispatched", actor={"id": "staff-1", "role": "staff", "name": "Eve"})
        named_override = override([(1029, "OnHold")])
        async with running_worker(worker), TopicReader(s, s.events_topic) as events:
            for command, signer in ((signed, token("staff", name="Sam")), (unsigned, None),
                                    (named_override, token("manager", name="Mia"))):
                headers = [("actor-token", signer.encode())] if signer else []
                await produce(s, [command], headers=headers)
                [outcome, *_] = await events_for(events, {command["command_id"]}, timeout=30)
                assert outcome["type"] != "OrderStatusChangeRejected", outcome
            read_api = f"http://127.0.0.1:{worker.http_port}/orders/1029/history"
            actors = {}
            async with aiohttp.ClientSession() as http:
                for who, bearer in (("staff", token("staff", sub="staff-9")), ("client", token("client"))):
                    async with http.get(read_api, headers={"Authorization": f"Bearer {bearer}"}) as response:
                        assert response.status == 200, who
                        actors[who] = [e["actor"] for e in (await response.json())["history"]]
        assert actors["staff"] == [{"id": "staff-1", "role": "staff", "client_id": None, "name": "Sam"},
                                   {"id": "staff-1", "role": "staff", "client_id": None},
                                   {"id": "manager-1", "role": "manager", "client_id": None, "name": "Mia"}]
        assert actors["client"] == [{"role": "staff", "name": "Sam"}, {"role": "staff"},
                                    {"role": "manager", "name": "Mia"}]
        async with running_console(s) as base, ConsoleClient(base) as staff:
            await staff.sign_in(token("staff"))
            status, page = await staff.get("/orders/1029")
        assert status == 200
        assert '<span class="actor-name">Sam</span> (staff, staff-1)' in page
        assert '<span class="actor-name">Mia</span> (manager, manager-1)' in page
        assert "by staff (staff-1)" in page and "Eve" not in page

    async def test_a_dead_letter_redriven_from_the_console_after_the_fix_changes_the_order(self, settings, tmp_path):
        """An override refused on the wire (limit of 1 item) is dead-lettered and listed by the console's index
        under its reason (not under another); with the limit back, the preview of all that match the filter sends
        nothing and says 1 would go, the confirmation redrives it (the `dlq redrive` use case), the
        orders change, and the audit records who, what, how many and the result."""
        s = console_settings(settings, tmp_path)
        await seed(s)
        batch = override([(1033, "OnHold"), (1031, "OnHold")])
        async with TopicReader(s, s.events_topic) as events, TopicReader(s, s.dlq_topic) as dlq:
            async with running_worker(s.model_copy(update={"max_wire_items": 1})):
                await produce(s, [batch])
                await dlq.wait_for(lambda _: dlq.records, timeout=30, what="the dead letter")
            [letter] = dlq.records
            async with running_worker(s), running_console(s) as base, ConsoleClient(base) as manager:
                await manager.sign_in(token("manager", name="Mia"))
                status, page = await manager.get(f"/dead-letters/{letter.partition}/{letter.offset}")
                assert status == 200 and "error.reason: validation_failed" in page
                listed = await manager.wait_until_listed(letter.partition, letter.offset,
                                                         "/dead-letters?reason=validation_failed")
                _, other_reason = await manager.get("/dead-letters?reason=not_json")
                assert listed not in other_reason and "0 dead letter(s) match" in other_reason
                csrf = await manager.csrf()
                preview = {"csrf": csrf, "mode": "filter", "reason": "validation_failed", "step": "preview"}
                status, page = await manager.post("/dead-letters/redrive", preview)
                assert status == 200 and "<strong>1</strong> of 1 would be sent" in page
                form = {"csrf": csrf, "mode": "selected", "position": position(letter), "step": "preview"}
                assert await fetchval(s, "SELECT version FROM orders WHERE order_id = 1033") == 0
                status, page = await manager.post("/dead-letters/redrive", {**form, "step": "confirm"})
                assert status == 200 and "<strong>1</strong> redriven" in page and "redrive.count 1" in page
                await events.wait_for(lambda values: any(v.get("type") == "OrderStatusOverrideCompleted"
                                                         and v.get("command_id") == batch["command_id"]
                                                         for v in values), timeout=30, what="the summary")
        assert await fetchval(s, "SELECT version FROM orders WHERE order_id = 1033") == 1
        assert [tuple(r) for r in await audit_rows(s)] == [("manager-1", "manager", "dlq.redrive", position(letter), 1,
                                                            "ok")]

    async def test_a_parked_outbox_row_is_retried_after_a_preview(self, settings, tmp_path):
        """A parked row is listed with its broker error; the preview changes nothing; the confirmation releases
        it through the `outbox retry` use case and the audit says so; the audit page lists the action."""
        s = console_settings(settings, tmp_path)
        await seed(s)
        row_id = await fetchval(
            s, "INSERT INTO outbox (event_id, event_type, topic, message_key, payload, order_id, parked_at, park_reason) "
               "VALUES ($1, 'OrderStatusChanged', $2, '1029', '{}', 1029, now(), 'MessageSizeTooLargeError: too big') "
               "RETURNING id", uuid.uuid4(), s.events_topic)
        async with running_console(s) as base, ConsoleClient(base) as manager:
            await manager.sign_in(token("manager"))
            status, page = await manager.get("/outbox")
            assert "MessageSizeTooLargeError: too big" in page and f'value="{row_id}"' in page
            csrf = await manager.csrf()
            status, page = await manager.post("/outbox/retry", {"csrf": csrf, "id": str(row_id), "step": "preview"})
            assert status == 200 and "Confirm: retry 1 row(s)" in page
            assert await fetchval(s, "SELECT count(*) FROM outbox WHERE parked_at IS NOT NULL") == 1
            status, page = await manager.post("/outbox/retry", {"csrf": csrf, "id": str(row_id), "step": "confirm"})
            assert status == 200 and f"Released 1 row(s): {row_id}" in page
            assert await fetchval(s, "SELECT count(*) FROM outbox WHERE parked_at IS NOT NULL") == 0
            status, page = await manager.get("/audit")
            assert "outbox.retry" in page
        assert [tuple(r) for r in await audit_rows(s)] == [("manager-1", "manager", "outbox.retry", str(row_id), 1,
                                                            "ok")]

    async def test_rules_and_health_pages(self, settings, tmp_path):
        """The rules page names the loaded version and every order type's statuses and transitions with roles and
        diagram; the health page lists the console's own heartbeat and draws the last hour's charts."""
        s = console_settings(settings, tmp_path)
        await seed(s)
        async with running_console(s) as base, ConsoleClient(base) as staff:
            await staff.sign_in(token("staff"))
            status, page = await staff.get("/rules")
            assert status == 200 and "Rules version <strong>1</strong>" in page
            for order_type in ("SO", "PO", "TR"):
                assert f"Order type “{order_type}”" in page
            assert "<td>staff, manager, system</td>" in page and page.count("<svg") >= 5
            await wait_until(lambda: _console_beat(s), 20, "the console's heartbeat")
            status, page = await staff.get("/health")
            assert status == 200 and "<td>console</td>" in page
            assert page.count('class="chart"') == 5

    async def test_the_rules_page_follows_a_rules_load(self, settings, tmp_path):
        """The console reads the rules through its cache: after `orderstatus rules load` of a file with one more
        status, the next rules page names version 2 and lists the new status (the cache noticed the version)."""
        import yaml

        from tests.helpers.database import SAMPLE_RULES

        s = console_settings(settings, tmp_path)
        await seed(s)
        rules = yaml.safe_load(SAMPLE_RULES.read_text(encoding="utf-8"))
        rules["statuses"].append({"id": 99, "code": "Quarantined", "name": "Quarantined", "order_types": ["SO"]})
        changed_rules = tmp_path / "rules-v2.yaml"
        changed_rules.write_text(yaml.safe_dump(rules), encoding="utf-8")
        async with running_console(s) as base, ConsoleClient(base) as staff:
            await staff.sign_in(token("staff"))
            status, page = await staff.get("/rules")
            assert status == 200 and "Rules version <strong>1</strong>" in page and "Quarantined" not in page
            assert (await staff.get("/orders/1029"))[0] == 200
            ok(await run_cli_async(settings_env(s), "rules", "load", str(changed_rules)))
            status, page = await staff.get("/rules")
        assert status == 200 and "Rules version <strong>2</strong>" in page
        assert "<td><code>Quarantined</code></td>" in page

    async def test_rules_and_order_pages_without_the_diagrams_extra(self, settings, tmp_path, monkeypatch):
        """With grandalf unimportable (an image built without the diagrams extra) the rules and order pages answer
        200 with their tables, and a line naming the extra where the diagram was."""
        monkeypatch.setitem(sys.modules, "grandalf", None)
        for name in [m for m in sys.modules if m.startswith(("grandalf.", "service.queries.graph."))]:
            monkeypatch.delitem(sys.modules, name)  # imported anew (and refused) when the console looks for it
        s = console_settings(settings, tmp_path)
        await seed(s)
        async with running_console(s) as base, ConsoleClient(base) as staff:
            await staff.sign_in(token("staff"))
            status, page = await staff.get("/rules")
            assert status == 200 and "<td>staff, manager, system</td>" in page and "<h3>Statuses</h3>" in page
            sections = page.count('<h2 id="type-')
            assert sections >= 3 and page.count('<p class="no-diagram">') == sections and "<svg" not in page
            assert "pip install 'orderstatus[diagrams]'" in page
            status, page = await staff.get("/orders/1029")
            assert status == 200 and "State diagram of" in page
            assert page.count('<p class="no-diagram">') == 1 and "<svg" not in page


class TestHeaders:
    async def test_every_page_carries_the_security_headers_and_its_server_time(self, settings, tmp_path):
        """Each page, the sign-in page and a redirect: a same-origin-only CSP, nosniff, no caching of pages, and
        Server-Timing with the request's server time."""
        s = console_settings(settings, tmp_path)
        await seed(s)
        async with running_console(s) as base, ConsoleClient(base) as staff:
            await staff.sign_in(token("staff"))
            timings = {}
            for path in ("/sign-in", "/orders", "/orders?q=c-1", "/orders/1029", "/rules", "/outbox", "/dead-letters",
                         "/health", "/audit"):
                async with staff.http.get(base + path, allow_redirects=False) as response:
                    await response.read()
                    headers = response.headers
                assert headers["Content-Security-Policy"].startswith("default-src 'self'"), path
                assert headers["X-Content-Type-Options"] == "nosniff" and headers["Cache-Control"] == "no-store", path
                timings[path] = float(re.fullmatch(r"app;dur=([0-9.]+)", headers["Server-Timing"]).group(1))
            print("console server time (ms):", timings)


async def _emails_recorded(settings) -> bool:
    return await fetchval(settings, "SELECT count(*) FROM sent_notifications WHERE status = 'sent'") >= 2


async def _console_beat(settings) -> bool:
    return await fetchval(settings, "SELECT count(*) FROM process_heartbeats WHERE kind = 'console'") >= 1


class TestMoreActions:
    async def test_a_manager_resends_a_changes_emails_through_the_resend_use_case(self, settings, tmp_path, mailbox):
        """The resend preview lists what was sent and sends nothing; the confirmation sends each contact the
        email once more (attempt 2, as `notifications resend` does) and the audit records it."""
        s = console_settings(settings, tmp_path)
        await seed(s)
        applied = change(1029, "ReadyToShip")
        async with running_worker(s), running_notifier(s), TopicReader(s, s.events_topic) as events:
            await produce(s, [applied])
            [event] = await events_for(events, {applied["command_id"]}, timeout=30)
            await wait_until(lambda: _emails_recorded(s), 30, "the emails to be recorded")
        sent_before = len(mailbox.mailbox.messages)
        async with running_console(s) as base, ConsoleClient(base) as manager:
            await manager.sign_in(token("manager"))
            csrf = await manager.csrf("/orders/1029")
            form = {"csrf": csrf, "event_id": event["event_id"], "order_id": "1029"}
            status, page = await manager.post("/emails/resend", form)
            assert status == 200 and "Confirm: resend" in page and "ann@example.com: sent (attempt 1" in page
            assert len(mailbox.mailbox.messages) == sent_before
            status, page = await manager.post("/emails/resend", {**form, "step": "confirm"})
            assert status == 200 and "ann@example.com: sent (attempt 2)" in page
        assert len(mailbox.mailbox.messages) == sent_before + 2
        assert [tuple(r) for r in await audit_rows(s)] == [("manager-1", "manager", "email.resend", event["event_id"],
                                                            2, "ok")]

    async def test_a_dead_letter_is_shown_in_full_with_its_bytes_escaped_and_its_token_hidden(self, settings,
                                                                                              tmp_path):
        """A record that is not JSON, with control and non-UTF-8 bytes and an actor token header: its page shows
        the bytes escaped (\\x01, \\xff), the reason, never the token, and says why it cannot be redriven."""
        s = console_settings(settings, tmp_path)
        await seed(s)
        async with running_worker(s), TopicReader(s, s.dlq_topic) as dlq:
            await produce(s, [b"not json \x01\xff <b>"], key="1030", headers=[("actor-token", b"secret-token")])
            await dlq.wait_for(lambda _: dlq.records, timeout=30, what="the dead letter")
        [letter] = dlq.records
        async with running_console(s) as base, ConsoleClient(base) as staff:
            await staff.sign_in(token("staff"))
            status, page = await staff.get(f"/dead-letters/{letter.partition}/{letter.offset}")
        assert status == 200 and "error.reason: not_json" in page
        assert "not json \\x01\\xff &lt;b&gt;" in page and "<b>" not in page.split("<pre", 1)[1].split("</pre>")[0]
        assert "secret-token" not in page and "actor-token: (redacted, 12 bytes)" in page


class TestFailedRedrive:
    async def test_a_redrive_the_broker_cannot_take_is_audited_as_failed_and_shown_so(self, settings, tmp_path):
        """The broker stopped between the preview and the confirmation: the page says the redrive stopped and why
        (200, no 500), and the audit row — on the Audit page too — says failed with the reason and 0 sent."""
        broker = new_broker("console-redrive")
        await asyncio.to_thread(broker.start)
        try:
            s = console_settings(settings, tmp_path, kafka_bootstrap_servers=broker.bootstrap_servers)
            await seed(s)
            async with TopicReader(s, s.dlq_topic) as dlq:
                async with running_worker(s.model_copy(update={"max_wire_items": 1})):
                    await produce(s, [override([(1033, "OnHold"), (1031, "OnHold")])])
                    await dlq.wait_for(lambda _: dlq.records, timeout=30, what="the dead letter")
                [letter] = dlq.records
            async with running_console(s) as base, ConsoleClient(base) as manager:
                await manager.sign_in(token("manager"))
                await manager.wait_until_listed(letter.partition, letter.offset)
                form = {"csrf": await manager.csrf(), "mode": "selected", "position": position(letter)}
                status, page = await manager.post("/dead-letters/redrive", {**form, "step": "preview"})
                assert status == 200 and "<strong>1</strong> of 1 would be sent" in page
                await asyncio.to_thread(broker.stop)
                status, page = await manager.post("/dead-letters/redrive", {**form, "step": "confirm"})
                assert status == 200 and "The redrive stopped: Kafka unavailable (" in page, page
                status, page = await manager.get("/audit")
                assert status == 200 and "<td>failed: Kafka unavailable (" in page
            [row] = await audit_rows(s)
            assert tuple(row)[:5] == ("manager-1", "manager", "dlq.redrive", position(letter), 0)
            assert row["result"].startswith("failed: Kafka unavailable (") and "\n" not in row["result"], row["result"]
        finally:
            await asyncio.to_thread(broker.stop)


def _requests_counted(metrics_text: str, route: str, status: str) -> float:
    """orderstatus_http_requests_total of the console for GET `route` answered with `status` (0 when absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    return sum(sample.value for family in text_string_to_metric_families(metrics_text)
               for sample in family.samples
               if sample.name == "orderstatus_http_requests_total"
               and sample.labels == {"service": "console", "method": "GET", "route": route, "status": status})


class TestOperations:
    async def test_with_an_ops_port_the_probes_status_and_metrics_leave_the_public_port(self, settings, tmp_path):
        """ORDERSTATUS_CONSOLE_OPS_PORT: /status, /readyz, /healthz and /metrics answer 404 on the console's port
        and 200 on the ops port, while the pages stay on the console's port."""
        from service.devkit.embedded import free_port

        s = console_settings(settings, tmp_path, console_ops_port=free_port())
        await seed(s)
        ops_base = f"http://127.0.0.1:{s.console_ops_port}"
        async with running_console(s) as base, ConsoleClient(base) as public, ConsoleClient(ops_base) as ops:
            for path in ("/status", "/readyz", "/healthz", "/metrics"):
                assert (await public.get(path))[0] == 404, path
            status, body = await ops.get("/status")
            assert status == 200 and '"read_only": false' in body
            assert (await ops.get("/readyz"))[0] == 200 and (await ops.get("/healthz"))[0] == 200
            assert (await ops.get("/metrics"))[0] == 200
            assert (await ops.get("/orders"))[0] == 404
            await public.sign_in(token("staff"))
            assert (await public.get("/orders"))[0] == 200

    async def test_metrics_count_the_console_requests_by_route_and_status(self, settings, tmp_path):
        """/metrics on the console's port (no ops port): a page load is counted under its route template and
        status (an order page under /orders/{order_id}), a redirect to the sign-in page under 303."""
        s = console_settings(settings, tmp_path)
        await seed(s)
        async with running_console(s) as base, ConsoleClient(base) as staff:
            _, before = await staff.get("/metrics")
            assert _requests_counted(before, "/orders", "200") == 0
            assert (await staff.get("/orders"))[0] == 303
            await staff.sign_in(token("staff"))
            assert (await staff.get("/orders"))[0] == 200
            assert (await staff.get("/orders/1029"))[0] == 200
            status, after = await staff.get("/metrics")
        assert status == 200
        assert _requests_counted(after, "/orders", "303") == 1 and _requests_counted(after, "/orders", "200") == 1
        assert _requests_counted(after, "/orders/{order_id}", "200") == 1
        assert 'orderstatus_http_request_seconds_count{method="GET",route="/orders",service="console"} 2.0' in after
        assert 'orderstatus_ready{service="console"} 1.0' in after

    async def test_the_secure_cookie_setting_forces_secure_over_plain_http(self, settings, tmp_path):
        """ORDERSTATUS_CONSOLE_SECURE_COOKIE=true: the session cookie is Secure although the request came over
        plain HTTP (behind an ingress that terminates TLS); an X-Forwarded-Proto header alone changes nothing."""
        forced = console_settings(settings, tmp_path, console_secure_cookie="true")
        await seed(forced)
        async with running_console(forced) as base, ConsoleClient(base) as client:
            response = await client.sign_in(token("staff"))
            assert response.status == 303 and "Secure" in response.headers["Set-Cookie"]
        auto = console_settings(settings, tmp_path)
        async with running_console(auto) as base, ConsoleClient(base) as client:
            async with client.http.post(f"{base}/sign-in", data={"token": token("staff"), "next": "/orders"},
                                        headers={"X-Forwarded-Proto": "https"}, allow_redirects=False) as response:
                await response.read()
            assert response.status == 303 and "Secure" not in response.headers["Set-Cookie"]

    async def test_expired_sessions_and_sign_in_links_are_purged_in_the_background(self, settings, tmp_path):
        """Rows past their expiry in console_sessions and console_sign_in_links are deleted by the running console
        without anyone signing out; a session and a link still valid are kept."""
        s = console_settings(settings, tmp_path)
        await seed(s)
        for name, expires in (("old", "now() - interval '1 minute'"), ("live", "now() + interval '1 hour'")):
            await fetchval(s, "INSERT INTO console_sessions (id_sha256, sub, role, name, client_id, expires_at) "
                              f"VALUES ($1, $2, 'staff', NULL, NULL, {expires}) RETURNING 1", f"{name}-hash", name)
            await fetchval(s, "INSERT INTO console_sign_in_links (code_sha256, sub, role, name, client_id, "
                              f"session_expires, expires_at) VALUES ($1, $2, 'staff', NULL, NULL, "
                              f"now() + interval '1 hour', {expires}) RETURNING 1", f"{name}-code", name)

        async def purged() -> bool:
            return (await fetchval(s, "SELECT count(*) FROM console_sessions WHERE sub = 'old'") == 0
                    and await fetchval(s, "SELECT count(*) FROM console_sign_in_links WHERE sub = 'old'") == 0)

        assert not await purged()
        async with running_console(s):
            await wait_until(purged, 30, "the expired session and link to be purged", interval=0.2)
        assert [r["sub"] for r in await fetch(s, "SELECT sub FROM console_sessions")] == ["live"]
        assert [r["sub"] for r in await fetch(s, "SELECT sub FROM console_sign_in_links")] == ["live"]
