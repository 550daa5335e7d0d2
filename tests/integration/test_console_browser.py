"""The operator console in a real browser (issue 21 item 8): headless Debian Chromium driven by Playwright
against a console, worker and notifier running on the test's real Postgres and broker. A manager signs in
through a one-time link, finds an order by a command id and reads its timeline and its rejection, and
redrives a dead letter with the keyboard alone (preview, then confirmation) after the fix; staff and a
read-only console see no action, and a POST staff forges is refused. Every page is saved as a screenshot
in /tmp/console-*.png (the README's pictures) and checked with axe-core: no serious or critical violation."""

from __future__ import annotations

from playwright.async_api import Page, expect

from service.entrypoints.cli.console import link_url, make_link
from tests.helpers.browser import VIEWPORT, chromium, console_settings, running_console, shot, token
from tests.helpers.commands import change, override
from tests.helpers.database import fetchval, seed
from tests.helpers.producing import produce
from tests.helpers.services import running_notifier, running_worker
from tests.helpers.topics import TopicReader, events_for
from tests.helpers.waiting import wait_until

async def sign_in_by_link(page: Page, settings, who: str) -> None:
    """Open a one-time link and press Enter on its (focused) button: the console's own sign-in, by keyboard."""
    await page.goto(link_url(settings, await make_link(settings, who)))
    await expect(page.get_by_role("button", name="Sign in")).to_be_focused()
    await shot(page, "sign-in-link")
    await page.keyboard.press("Enter")
    await page.wait_for_url("**/orders")


async def tab_to(page: Page, name: str, limit: int = 40) -> None:
    """Press Tab until the focused element's accessible text is `name` (keyboard navigation, no clicks)."""
    for _ in range(limit):
        if (await page.evaluate("document.activeElement && document.activeElement.textContent.trim()")) == name:
            return
        await page.keyboard.press("Tab")
    raise AssertionError(f"no focusable {name!r} within {limit} tabs")


async def test_a_manager_finds_an_order_and_redrives_a_dead_letter_with_the_keyboard(settings, tmp_path):
    """Sign in by one-time link; search a command id; the timeline shows the change and the rejection; the
    dead letter listed by the index is selected with Space, previewed and confirmed with Enter; the order
    then shows the status the redriven command set; a parked outbox row is retried the same way; the audit
    page lists both actions."""
    s = console_settings(settings, tmp_path)
    await seed(s)
    applied = change(1029, "ReadyToShip", note={"text": "stock checked by hand", "is_public": False})
    refused = change(1029, "Completed")
    async with TopicReader(s, s.events_topic) as events, TopicReader(s, s.dlq_topic) as dlq:
        async with running_worker(s.model_copy(update={"max_wire_items": 1})):  # the fault: too low a limit
            await produce(s, [override([(1033, "OnHold"), (1031, "OnHold")])])
            await dlq.wait_for(lambda _: dlq.records, timeout=30, what="the dead letter")
        [letter] = dlq.records
        async with running_worker(s), running_notifier(s), running_console(s) as base, chromium() as browser:
            await produce(s, [applied, refused])
            await events_for(events, {applied["command_id"], refused["command_id"]}, timeout=30)
            page = await browser.new_page(viewport=VIEWPORT)
            await sign_in_by_link(page, s, token("manager", name="Mia (ops)"))
            await shot(page, "search")

            await page.keyboard.type(applied["command_id"])  # the search box has the focus
            await page.keyboard.press("Enter")
            await page.wait_for_url("**/orders/1029")
            timeline = page.locator("ol.timeline li.change").first
            await expect(timeline.locator("h3")).to_have_text("Confirmed → Ready to ship")
            await expect(timeline).to_contain_text("stock checked by hand")
            await expect(page.locator("#rejections + table")).to_contain_text("transition_not_allowed")
            await shot(page, "order", full_page=True)

            row = f'input[name="position"][value="{letter.partition}:{letter.offset}"]'

            async def listed() -> bool:
                await page.goto(f"{base}/dead-letters?reason=validation_failed")
                return await page.locator(row).count() == 1

            await wait_until(listed, 30, "the dead letter to be indexed", interval=0.5)
            await shot(page, "dead-letters")
            await page.focus(row)
            await page.keyboard.press("Space")
            await tab_to(page, "Preview redrive of the selected…")
            await page.keyboard.press("Enter")
            await page.wait_for_url("**/dead-letters/redrive")
            await expect(page.get_by_role("status")).to_contain_text("1 of 1 would be sent back")
            await shot(page, "redrive-preview")
            assert await fetchval(s, "SELECT status_id FROM orders WHERE order_id = 1033") != 4
            await expect(page.get_by_role("button", name="Confirm: redrive 1 dead letter(s)")).to_be_focused()
            await page.keyboard.press("Enter")
            await expect(page.get_by_role("status")).to_contain_text("Done: 1 redriven, 0 skipped")
            await shot(page, "redrive-done")

            await wait_until(lambda: _status_of(s, 1033, 4), 30, "the redriven override to apply")
            await page.goto(f"{base}/orders/1033")
            await expect(page.locator("h1")).to_contain_text("On hold")
            row_id = await fetchval(
                s, "INSERT INTO outbox (event_id, event_type, topic, message_key, payload, order_id, parked_at, "
                   "park_reason) VALUES (gen_random_uuid(), 'OrderStatusChanged', $1, '1029', '{}', 1029, now(), "
                   "'MessageSizeTooLargeError: the broker refused 1.2 MB') RETURNING id", s.events_topic)
            await page.goto(f"{base}/outbox")
            await shot(page, "outbox")
            await page.focus(f'input[name="id"][value="{row_id}"]')
            await page.keyboard.press("Space")
            await tab_to(page, "Preview retry of the selected rows…")
            await page.keyboard.press("Enter")
            await expect(page.get_by_role("button", name="Confirm: retry 1 row(s)")).to_be_focused()
            await shot(page, "outbox-retry-preview")
            await page.keyboard.press("Enter")
            await expect(page.get_by_role("status")).to_contain_text(f"Released 1 row(s): {row_id}")
            assert await fetchval(s, "SELECT count(*) FROM outbox WHERE parked_at IS NOT NULL") == 0

            await page.goto(f"{base}/audit")
            await expect(page.locator("table")).to_contain_text("dlq.redrive")
            await expect(page.locator("table")).to_contain_text("outbox.retry")
            await shot(page, "audit")
            await page.goto(f"{base}/dead-letters/{letter.partition}/{letter.offset}")
            await shot(page, "dead-letter")
            for name in ("rules", "health"):
                await page.goto(f"{base}/{name}")
                await shot(page, name, full_page=name != "rules")


async def test_staff_and_a_read_only_console_show_no_action(settings, tmp_path):
    """Staff sees no action on any page and its forged POST (with its own CSRF token) is 403; in a read-only
    console a manager sees no action either; a client's token is refused at sign-in."""
    s = console_settings(settings, tmp_path)
    await seed(s)
    async with running_console(s) as base, chromium() as browser:
        page = await browser.new_page(viewport=VIEWPORT)
        await sign_in_by_link(page, s, token("staff", name="Sam"))
        for path in ("/orders/1029", "/outbox", "/dead-letters"):
            await page.goto(base + path)
            await expect(page.locator("form[method=post]:not([action='/sign-out'])")).to_have_count(0)
        await shot(page, "staff-dead-letters")
        csrf = await page.locator('input[name="csrf"]').first.input_value()
        forged = await page.request.post(f"{base}/outbox/retry", form={"csrf": csrf, "id": "1", "step": "confirm"})
        assert forged.status == 403

        client = await browser.new_page(viewport=VIEWPORT)
        await client.goto(f"{base}/sign-in")
        await shot(client, "sign-in")
        await client.fill("#token", token("client"))
        await client.keyboard.press("Tab")
        await client.keyboard.press("Enter")
        await expect(client.get_by_role("alert")).to_contain_text("has no access to the console")

    read_only = s.model_copy(update={"console_read_only": True})
    async with running_console(read_only) as base, chromium() as browser:
        page = await browser.new_page(viewport=VIEWPORT)
        await sign_in_by_link(page, read_only, token("manager"))
        await expect(page.locator("header")).to_contain_text("read-only console")
        for path in ("/orders/1029", "/outbox", "/dead-letters"):
            await page.goto(base + path)
            await expect(page.locator("form[method=post]:not([action='/sign-out'])")).to_have_count(0)


KEY_CELLS = """() => {
    const column = [...document.querySelectorAll('thead th')].findIndex(th => th.textContent.trim() === 'Key');
    return [...document.querySelectorAll('tbody tr')].map(row => {
        const cell = row.children[column], code = cell.querySelector('code'), box = code.getBoundingClientRect();
        return {text: code.textContent, title: code.title, height: box.height, width: cell.getBoundingClientRect().width,
                font: parseFloat(getComputedStyle(code).fontSize), cut: code.scrollWidth > code.clientWidth};
    });
}"""


async def test_the_outbox_key_column_keeps_a_short_key_on_one_line(settings, tmp_path):
    """At 1366 px, beside long broker errors: a short key ("1033") on one line; a 120-character key cut short (an
    ellipsis, its whole text in the title) rather than widening its column; staff sees the rows with no POST form."""
    s = console_settings(settings, tmp_path)
    await seed(s)
    error = "KafkaTimeoutError: " + "the broker did not answer the produce request within the timeout " * 3
    long_key = "k" * 120

    async def park(key: str) -> None:
        await fetchval(s, "INSERT INTO outbox (event_id, event_type, topic, message_key, payload, order_id, parked_at, "
                          "park_reason) VALUES (gen_random_uuid(), 'OrderStatusChanged', $1, $2, '{}', 1033, now(), $3) "
                          "RETURNING id", s.events_topic, key.encode(), error)

    await park("1033")
    async with running_console(s) as base, chromium() as browser:
        page = await browser.new_page(viewport=VIEWPORT)
        await sign_in_by_link(page, s, token("manager"))
        await page.goto(f"{base}/outbox")
        [short] = await page.evaluate(KEY_CELLS)  # alone in its column: nothing else holds the column open
        assert short["text"] == "1033" and short["height"] < 1.8 * short["font"], short
        await park(long_key)
        await page.goto(f"{base}/outbox")
        short, long = await page.evaluate(KEY_CELLS)
        assert long["cut"] and long["title"] == long_key and long["width"] < VIEWPORT["width"] / 3, long
        await shot(page, "outbox-keys")
        staff = await browser.new_page(viewport=VIEWPORT)
        await sign_in_by_link(staff, s, token("staff"))
        await staff.goto(f"{base}/outbox")
        await expect(staff.locator("table")).to_contain_text("1033")
        await expect(staff.locator("form[method=post]:not([action='/sign-out'])")).to_have_count(0)


async def _status_of(settings, order_id: int, status_id: int) -> bool:
    return await fetchval(settings, "SELECT status_id FROM orders WHERE order_id = $1", order_id) == status_id
