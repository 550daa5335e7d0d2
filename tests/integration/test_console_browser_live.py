"""The console's partial updates (issue 21 item 7) against real services: the vendored htmx, served by the console
under a CSP that allows scripts from the console alone, refreshes the Health page's panels every 10 s through
/health/panels and swaps the dead-letter filter's list in place, in headless Chromium, with no script error;
the fragment route is guarded like its page, and a signed-out refresh sends the whole page to sign in."""

from __future__ import annotations

import hashlib
import re
from urllib.parse import parse_qs, urlsplit

from playwright.async_api import Page, expect
from yarl import URL

from service.console.app import STATIC
from service.entrypoints.cli.console import link_url, make_link
from tests.helpers.browser import ConsoleClient, VIEWPORT, chromium, console_settings, running_console, shot, token
from tests.helpers.commands import override
from tests.helpers.database import seed
from tests.helpers.producing import produce
from tests.helpers.services import running_worker
from tests.helpers.topics import TopicReader
from tests.helpers.waiting import wait_until

HTMX = "/static/vendor/htmx-2.0.11.min.js"
REFRESH_S = 10  # the Health page's hx-trigger="every 10s"


async def sign_in(page: Page, settings, who: str) -> None:
    """Spend a one-time link: the console's own sign-in page and its button."""
    await page.goto(link_url(settings, await make_link(settings, who)))
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url("**/orders")


def sign_in_then(url: str) -> str:
    """Where a redirect to the sign-in page sends the user back to afterwards."""
    parts = urlsplit(url)
    assert parts.path == "/sign-in" and not parts.netloc, url
    [after] = parse_qs(parts.query)["next"]
    return after


def script_errors(page: Page, answered: frozenset[tuple[str, int]] = frozenset()) -> list[str]:
    """Every uncaught exception and console error of the page from now on (a CSP refusal is a console error;
    so is a script not found). The browser also logs each 4xx answer it loads: the favicon it guesses (404) and
    the (path, status) pairs of `answered`, which the test provokes, are not errors."""
    errors: list[str] = []
    expected = answered | {("/favicon.ico", 404)}
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))

    def on_console(message) -> None:
        where = message.location["url"]
        status = re.search(r"Failed to load resource: .* status of (\d+)", message.text)
        if message.type == "error" and not (status and (urlsplit(where).path, int(status[1])) in expected):
            errors.append(f"console: {message.text} at {where}")

    page.on("console", on_console)
    return errors


class TestFragmentRoute:
    async def test_the_panels_route_is_guarded_like_its_page_and_answers_the_panels_alone(self, settings, tmp_path):
        """Signed out, /health/panels is redirected to sign-in as /health is; an htmx refresh gets a 401 whose
        HX-Redirect names the page (not the sign-in page's HTML to swap into a panel); signed in, it answers the
        panels without the page around them, with the page's security headers and server time."""
        s = console_settings(settings, tmp_path)
        await seed(s)
        async with running_console(s) as base, ConsoleClient(base) as staff:
            for path in ("/health", "/health/panels"):
                async with staff.http.get(base + path, allow_redirects=False) as response:
                    assert response.status == 303, path
                    assert sign_in_then(response.headers["Location"]) == path
            async with staff.http.get(base + "/health/panels", allow_redirects=False, headers={
                    "HX-Request": "true", "HX-Current-URL": base + "/health"}) as response:
                assert response.status == 401 and "Location" not in response.headers
                assert sign_in_then(response.headers["HX-Redirect"]) == "/health"

            await staff.sign_in(token("staff"))
            async with staff.http.get(base + "/health/panels", allow_redirects=False,
                                      headers={"HX-Request": "true"}) as response:
                text = await response.text()
                headers = response.headers
            assert response.status == 200
            assert '<h2 id="processes">' in text and '<h2 id="charts">' in text and "Updated at <time" in text
            assert "<html" not in text and "<nav" not in text and 'id="panels"' not in text
            assert "script-src 'self'" in headers["Content-Security-Policy"] and headers["Cache-Control"] == "no-store"
            assert re.fullmatch(r"app;dur=[0-9.]+", headers["Server-Timing"])
            status, page = await staff.get("/health")
            assert status == 200 and page.count('<h2 id="processes">') == 1 and f'src="{HTMX}"' in page
            assert 'hx-get="/health/panels"' in page and 'hx-trigger="every 10s, tab-shown"' in page

    async def test_the_vendored_script_is_served_by_the_console_and_kept_by_browsers(self, settings, tmp_path):
        """The file the package ships, byte for byte, cached for good (its name carries the version); no path out
        of the static folder and no hidden file is served."""
        s = console_settings(settings, tmp_path)
        async with running_console(s) as base, ConsoleClient(base) as anyone:
            async with anyone.http.get(base + HTMX) as response:
                body = await response.read()
                assert response.status == 200 and "javascript" in response.headers["Content-Type"]
                assert response.headers["Cache-Control"] == "max-age=31536000, immutable"
            shipped = (STATIC / "vendor" / "htmx-2.0.11.min.js").read_bytes()
            assert hashlib.sha256(body).hexdigest() == hashlib.sha256(shipped).hexdigest()
            async with anyone.http.get(base + "/static/console.css") as response:
                assert response.status == 200 and response.headers["Cache-Control"] == "max-age=3600"
            for path in ("/static/vendor/%2e%2e/%2e%2e/app.py", "/static/%2e%2e/app.py", "/static/vendor/.hidden",
                         "/static/vendor/nothing.js", "/static/vendor/%2e%2e/console.css"):
                # sent as written: the client must not resolve the dots before the console sees them
                async with anyone.http.get(URL(base + path, encoded=True), allow_redirects=False) as response:
                    assert response.status == 404, path


class TestInTheBrowser:
    async def test_the_health_panels_follow_a_worker_that_starts_and_stops_without_a_reload(self, settings, tmp_path):
        """A worker started after the Health page loaded appears in its processes panel and disappears when it
        stops, the "updated at" line moves, the page is never reloaded, the keyboard focus in a panel survives its
        refresh; while the tab is hidden the timer's refreshes are cancelled, and showing it refreshes at once;
        its CSP allows scripts from the console alone, no script error is logged and axe-core finds no serious
        violation."""
        s = console_settings(settings, tmp_path)
        await seed(s)
        async with running_console(s) as base, chromium() as browser:
            page = await browser.new_page(viewport=VIEWPORT)
            errors = script_errors(page)
            refreshes: list[str] = []
            page.on("request", lambda r: refreshes.append(r.url) if r.headers.get("hx-request") == "true" else None)
            await sign_in(page, s, token("staff", name="Sam"))
            response = await page.goto(f"{base}/health")
            policy = dict(d.strip().split(" ", 1) for d in response.headers["content-security-policy"].split(";"))
            assert policy["script-src"] == "'self'" and policy["default-src"] == "'self'"
            assert await page.evaluate("htmx.config.allowEval === false && htmx.config.historyCacheSize === 0")
            worker = page.locator("#panels").get_by_role("cell", name="worker", exact=True)
            await expect(worker).to_have_count(0)
            first = await page.locator("#panels p.updated time").get_attribute("datetime")
            await page.evaluate("window.stillThisPage = true")  # gone if anything reloads the page
            await page.locator("#panels a#parked-rows").focus()
            await page.evaluate("document.activeElement.beforeTheRefresh = true")

            async with running_worker(s):
                await expect(worker).to_have_count(1, timeout=(REFRESH_S * 3) * 1000)
                await expect(page.locator("#panels p.updated time")).not_to_have_attribute("datetime", first)
                await expect(page.locator("#panels a#parked-rows")).to_be_focused()
                assert await page.evaluate("!document.activeElement.beforeTheRefresh")  # a new link, swapped in
                await shot(page, "health-live", full_page=True)
            await expect(worker).to_have_count(0, timeout=(REFRESH_S * 3) * 1000)

            sent = len(refreshes)
            await page.evaluate("""() => {
                window.refreshesWhileHidden = [];  // after console.js's listener: sees whether it cancelled
                document.addEventListener("htmx:confirm", e => window.refreshesWhileHidden.push(e.defaultPrevented));
                Object.defineProperty(document, "hidden", {configurable: true, get: () => true});
                document.dispatchEvent(new Event("visibilitychange"));
            }""")
            await wait_until(lambda: page.evaluate("window.refreshesWhileHidden.length > 0"), REFRESH_S * 2,
                             "the timer's next refresh while hidden", interval=0.2)
            assert await page.evaluate("window.refreshesWhileHidden.every(cancelled => cancelled)")
            assert len(refreshes) == sent
            asked_when_shown = await page.evaluate("""() => {
                let asked = 0;
                document.addEventListener("htmx:beforeRequest", () => asked++);
                delete document.hidden;  // the document's own getter again: visible
                document.dispatchEvent(new Event("visibilitychange"));
                return asked;
            }""")
            assert asked_when_shown == 1  # at once, not at the timer's next tick
            await wait_until(lambda: len(refreshes) > sent, 10, "the refresh of a tab shown again", interval=0.1)

            assert await page.evaluate("window.stillThisPage === true")
            assert page.url == f"{base}/health"
            assert refreshes and all(urlsplit(url).path == "/health/panels" for url in refreshes)
            assert errors == []

    async def test_the_dead_letter_filter_swaps_the_list_in_place_and_keeps_the_url_shareable(self, settings,
                                                                                                tmp_path):
        """A filter submitted with Enter swaps the list (no reload) and pushes its URL; a filter the index refuses
        shows its message in place (422 swapped); Back loads the previous filter from the server; no script error."""
        s = console_settings(settings, tmp_path)
        await seed(s)
        async with TopicReader(s, s.dlq_topic) as dlq:
            async with running_worker(s.model_copy(update={"max_wire_items": 1})):  # the fault: too low a limit
                await produce(s, [override([(1033, "OnHold"), (1031, "OnHold")])])
                await dlq.wait_for(lambda _: dlq.records, timeout=30, what="the dead letter")
        async with running_console(s) as base, chromium() as browser:
            page = await browser.new_page(viewport=VIEWPORT)
            errors = script_errors(page, answered=frozenset({("/dead-letters", 422)}))  # the bad filter below
            await sign_in(page, s, token("manager", name="Mia (ops)"))
            status = page.get_by_role("status")
            one, none = re.compile(r"^1 dead letter\(s\) match"), re.compile(r"^0 dead letter\(s\) match")

            async def indexed() -> bool:
                await page.goto(f"{base}/dead-letters?reason=validation_failed")
                return bool(one.match(await status.text_content()))

            await wait_until(indexed, 30, "the dead letter to be indexed", interval=0.5)
            await page.goto(f"{base}/dead-letters?reason=not_json")
            await expect(status).to_have_text(none)
            await page.evaluate("window.stillThisPage = true")

            await page.get_by_label("Reason").fill("validation_failed")
            await page.get_by_label("Reason").press("Enter")
            await expect(status).to_have_text(one)
            await expect(page.locator('input[name="position"]')).to_have_count(1)
            assert parse_qs(urlsplit(page.url).query)["reason"] == ["validation_failed"]
            await page.get_by_label("Order id").fill("not-a-number")
            await page.get_by_label("Order id").press("Enter")
            await expect(page.get_by_role("alert")).to_contain_text("order id: not a number")
            assert await page.evaluate("window.stillThisPage === true")
            await shot(page, "dead-letters-filtered")

            await page.go_back()
            await page.wait_for_url(re.compile(r".*reason=validation_failed&.*order_id=$"))
            await expect(status).to_have_text(one)
            assert errors == []
