"""The operator console in a real browser against a running dev stack (issue 21 item 8), as a newcomer meets it:
`orderstatus dev` started as a subprocess (its own data directory and ports), the one-time sign-in links read
from its banner and opened in headless Debian Chromium, commands sent with `orderstatus send`, new rules loaded
with `orderstatus rules load`. Every page visited is saved as a screenshot (console-dev-*.png, beside the other
browser test's, ORDERSTATUS_CONSOLE_SHOTS) and checked with axe-core: no serious or critical violation.

Which dead letter "new rules fix": none of the worker's dead-letter reasons depends on the rules. A command is
dead-lettered for its bytes (not JSON, unknown type, failed validation, too large: `contract/commands.parse_command`
reads no rules) or because processing it failed on its own (`processing_failed`, `worker/poison.py`); whatever the
rules decide is a rejection event (DESIGN §6.1), never a dead letter (§6.2), and a redrive sends the same bytes
again. The closest honest one: a rules change in progress holds the rules row (as `rules load`'s swap does) longer
than the workers' lock timeout, so a change sent meanwhile times out on its own and is dead-lettered as
`processing_failed`; the new rules, once loaded, allow that change (the transition the old rules lack), and the
redriven letter applies under them. A parked outbox row: the worker's producer started with too small a
ORDERSTATUS_KAFKA_MAX_REQUEST_SIZE refuses a large event for good (MessageSizeTooLargeError); the fix is a restart
without that setting, and the row, still parked in Postgres, is retried from the console of the restarted stack."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
from dataclasses import dataclass

import asyncpg
import pytest
from playwright.async_api import Page, expect

from service.devkit.embedded import free_port, scratch_dir
from service.entrypoints.dev import SAMPLES
from tests.helpers.browser import VIEWPORT, chromium, shot
from tests.helpers.cli import run_cli_async
from tests.helpers.dev_stack import DevStack
from tests.helpers.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.subprocess]

# every port `orderstatus dev` takes, each a free one remembered in its data directory: never the usual 5432, 9092,
# 8080… another dev stack (or a developer's own) may hold
PORT_NAMES = ("PostgreSQL", "Kafka", "Kafka controller", "SMTP sink", "worker", "notifier", "gateway", "console")
# short enough that the dead letter comes in seconds (the default is 10 s per try, three tries)
LOCK_TIMEOUT_S = "1"
LINK = re.compile(r"^  as (a manager|staff): (http://\S+)$", re.MULTILINE)
CONSOLE = re.compile(r"^  console\s+(http://127\.0\.0\.1:\d+)/", re.MULTILINE)
# the fix: the sample rules plus the edge the dead-lettered change needs
NEW_EDGE = "  - {order_type: SO, from: ReadyToShip, to: OnHold, roles: [staff, manager]}\n"
ACTIONS = "form[method=post]:not([action='/sign-out']) button, input[type=checkbox]"


def manager_change(order_id: int, status: str, note: str | None = None) -> str:
    command = {"type": "ChangeOrderStatus", "order_id": order_id, "status": status,
               "actor": {"id": "m-1", "role": "manager"}}
    if note:
        command["note"] = {"text": note, "is_public": False}
    return json.dumps(command)


async def sign_in_with(page: Page, link: str, name: str) -> None:
    """Open a banner's one-time link and press its Sign in button."""
    await page.goto(link)
    await shot(page, f"dev-{name}-link")
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url("**/orders")


@dataclass
class Running:
    """A dev stack that is up: the environment its banner's `export` block gives, its one-time links, the console."""

    stack: DevStack
    env: dict[str, str]
    links: dict[str, str]
    base: str

    async def send(self, *args: str, expect_exit: int = 0) -> str:
        """`orderstatus send ARGS…` with the manager's token, as a user sends from a second shell."""
        sent = await run_cli_async(self.env, "send", "--token", self.env["MANAGER_TOKEN"], *args)
        assert sent.returncode == expect_exit, f"exit {sent.returncode}\n{sent.stdout}\n{sent.stderr}"
        return sent.stdout


@pytest.fixture
def data_dir():
    """A dev data directory of the test's own, its ports free ones (remembered in ports.json), deleted after."""
    folder = scratch_dir("orderstatus-dev-console-")
    (folder / "ports.json").write_text(json.dumps({name: free_port() for name in PORT_NAMES}))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@contextlib.asynccontextmanager
async def dev_stack(data_dir, *args: str, settings: dict[str, str] | None = None):
    """`async with dev_stack(dir) as running:` `orderstatus dev` until its banner; Ctrl-C after, even on failure,
    and it must exit 0. Its output and its processes' logs are printed (pytest shows them when a test fails)."""
    stack = DevStack(data_dir, *args, settings=settings)
    try:
        env = await stack.up()
        links = dict(LINK.findall(stack.text()))
        assert set(links) == {"a manager", "staff"}, stack.text()
        yield Running(stack, env, links, CONSOLE.search(stack.text()).group(1))
    finally:
        code = stack.interrupt()
        print(stack.text())
        for log in sorted((data_dir / "logs").glob("*.log")):
            lines = [line for line in log.read_text(errors="replace").splitlines() if '"route": "/status"' not in line]
            print(f"--- {log.name} (last lines, /status polls left out)\n" + "\n".join(lines[-40:]))
        shutil.rmtree(stack.out.parent, ignore_errors=True)
    assert code == 0, "orderstatus dev did not stop cleanly"


async def test_a_manager_redrives_a_dead_letter_after_new_rules_and_staff_and_a_client_cannot_act(data_dir, tmp_path):
    """On `orderstatus dev`: the manager's banner link signs in; a sent change and a refused one show on the order
    page with the refusal's reason; a change dead-lettered while the rules row was held is listed, the new rules
    loaded with the CLI show as version 2, the letter is redriven (preview, confirm) and the order moves to the
    status only the new rules allow; the staff link shows no action and its forged POST is 403, a POST without
    the CSRF token is 403, a client's token is refused at sign-in."""
    async with dev_stack(data_dir, "--reset", settings={"ORDERSTATUS_DB_LOCK_TIMEOUT_S": LOCK_TIMEOUT_S}) as dev:
        env, links, base, send = dev.env, dev.links, dev.base, dev.send
        async with chromium() as browser:
            manager = await browser.new_page(viewport=VIEWPORT)
            await sign_in_with(manager, links["a manager"], "manager")
            await shot(manager, "dev-search")

            # a change the rules allow and one they refuse (no edge Confirmed → Completed), as a user sends them
            await send("--wait", "--timeout", "60", manager_change(1029, "ReadyToShip", "stock counted by hand"))
            refused = await send("--wait", "--json", "--timeout", "60", manager_change(1029, "Completed"),
                                 expect_exit=3)
            assert "transition_not_allowed" in refused, refused
            await manager.fill("#q", "1029")
            await manager.keyboard.press("Enter")
            await manager.wait_for_url("**/orders/1029")
            await expect(manager.locator("h1")).to_contain_text("Ready to ship")
            latest = manager.locator("ol.timeline li.change").first
            await expect(latest.locator("h3")).to_have_text("Confirmed → Ready to ship")
            await expect(latest).to_contain_text("stock counted by hand")
            await expect(latest).to_contain_text("by Mia (ops) (manager, m-1)")  # the dev token's verified name
            await expect(manager.locator("#rejections + table")).to_contain_text("transition_not_allowed")
            await shot(manager, "dev-order", full_page=True)

            # the dead letter: a rules change in progress holds the rules row past the worker's lock timeout
            holder = await asyncpg.connect(env["ORDERSTATUS_DATABASE_URL"])
            try:
                swap = holder.transaction()
                await swap.start()
                await holder.execute("SELECT version FROM rules_meta FOR UPDATE")
                await send(manager_change(1031, "OnHold", "held for the courier"))
                letters = manager.locator('input[name="position"]')

                async def listed() -> bool:
                    await manager.goto(f"{base}/dead-letters?reason=processing_failed")
                    return await letters.count() == 1

                await wait_until(listed, 60, "the dead letter in the console", interval=0.5)
                await swap.rollback()
            finally:
                await holder.close()
            position = await letters.first.get_attribute("value")
            await expect(manager.locator("table")).to_contain_text("1031")
            await shot(manager, "dev-dead-letters")
            await expect(manager.locator(ACTIONS)).not_to_have_count(0)  # what staff must not see: shown to a manager
            await manager.goto(f"{base}/dead-letters/{position.replace(':', '/')}")
            await expect(manager.locator("main")).to_contain_text("lock timeout")
            await shot(manager, "dev-dead-letter")

            next_for_manager = manager.locator("section[aria-labelledby=next] p", has_text="As manager")
            await manager.goto(f"{base}/orders/1031?role=manager")
            await expect(next_for_manager).not_to_contain_text("On hold")  # the old rules: no such edge
            rules_file = tmp_path / "rules.yaml"
            rules_file.write_text((SAMPLES / "rules.yaml").read_text() + NEW_EDGE)  # transitions come last
            loaded = await run_cli_async(env, "rules", "load", str(rules_file))
            assert loaded.returncode == 0 and "rules version 2" in loaded.stdout, loaded.stdout + loaded.stderr
            await manager.goto(f"{base}/rules")
            await expect(manager.locator("main p").first).to_contain_text("Rules version 2")
            await expect(manager.locator("tr", has_text="Ready to ship (5)").filter(has_text="On hold (4)")) \
                .to_contain_text("staff, manager")
            await shot(manager, "dev-rules")
            await manager.goto(f"{base}/orders/1031?role=manager")
            await expect(next_for_manager).to_contain_text("On hold (4)")

            await manager.goto(f"{base}/dead-letters?reason=processing_failed")
            await manager.check(f'input[name="position"][value="{position}"]')
            await manager.get_by_role("button", name="Preview redrive of the selected…").click()
            await expect(manager.get_by_role("status")).to_contain_text("1 of 1 would be sent back")
            await shot(manager, "dev-redrive-preview")
            await manager.get_by_role("button", name="Confirm: redrive 1 dead letter(s)").click()
            await expect(manager.get_by_role("status")).to_contain_text("Done: 1 redriven, 0 skipped")
            await shot(manager, "dev-redrive-done")

            async def on_hold() -> bool:
                await manager.goto(f"{base}/orders/1031")
                return "On hold" in await manager.locator("h1").inner_text()

            await wait_until(on_hold, 60, "the redriven change on the order page", interval=0.5)
            latest = manager.locator("ol.timeline li.change").first
            await expect(latest.locator("h3")).to_have_text("Ready to ship → On hold")
            await expect(latest).to_contain_text("held for the courier")
            await shot(manager, "dev-order-redriven", full_page=True)
            await manager.goto(f"{base}/audit")
            await expect(manager.locator("table")).to_contain_text("dlq.redrive")
            await shot(manager, "dev-audit")
            await manager.goto(f"{base}/health")
            await shot(manager, "dev-health", full_page=True)

            # a POST without the CSRF token, from the manager's own session (who may act): refused
            unguarded = await manager.request.post(f"{base}/dead-letters/redrive",
                                                   form={"position": position, "step": "confirm", "mode": "selected"})
            assert unguarded.status == 403 and "CSRF" in await unguarded.text(), unguarded.status

            staff_context = await browser.new_context(viewport=VIEWPORT)  # a cookie jar of its own
            staff = await staff_context.new_page()
            await sign_in_with(staff, links["staff"], "staff")
            for path in ("/orders/1031", "/dead-letters", "/outbox", "/rules"):
                await staff.goto(base + path)
                await expect(staff.locator("main")).not_to_be_empty()
                await expect(staff.locator(ACTIONS)).to_have_count(0)
            await staff.goto(f"{base}/dead-letters")
            await expect(staff.locator("table")).to_contain_text(position)  # it sees the letter, not the action
            await shot(staff, "dev-staff-dead-letters")
            csrf = await staff.locator('input[name="csrf"]').first.input_value()
            forged = await staff.request.post(f"{base}/dead-letters/redrive",
                                              form={"csrf": csrf, "position": position, "step": "confirm",
                                                    "mode": "selected"})
            assert forged.status == 403 and "may look but not act" in await forged.text(), forged.status

            client_context = await browser.new_context(viewport=VIEWPORT)
            client = await client_context.new_page()
            await client.goto(f"{base}/sign-in")
            await client.fill("#token", env["CLIENT_TOKEN"])
            await client.get_by_role("button", name="Sign in").click()
            await expect(client.get_by_role("alert")).to_contain_text("has no access to the console")
            await shot(client, "dev-client-refused")


async def test_a_row_the_broker_refused_is_retried_from_the_console_after_a_restart_with_the_fix(data_dir):
    """On `orderstatus dev` whose producer takes at most 2 KiB: a change with a long note applies but its event is
    refused for good and parked (the dev output warns); the outbox page shows it with the broker's error; after a
    restart without the small limit the manager retries it from the console (preview, confirm) and the event is
    published: the notifier's email shows on the order's timeline."""
    note = "x" * 3000
    async with dev_stack(data_dir, "--reset", settings={"ORDERSTATUS_KAFKA_MAX_REQUEST_SIZE": "2048"}) as dev:
        await dev.send(manager_change(1033, "Confirmed", note))
        await wait_until(lambda: "1 outbox rows are parked" in dev.stack.text(), 60, "the dev stack's parked warning")
        async with chromium() as browser:
            manager = await browser.new_page(viewport=VIEWPORT)
            await sign_in_with(manager, dev.links["a manager"], "manager")
            await manager.goto(f"{dev.base}/outbox")
            await expect(manager.locator("main")).to_contain_text("MessageSizeTooLargeError")
            await shot(manager, "dev-outbox-parked")

    async with dev_stack(data_dir) as dev:  # the fix: the producer's default request size
        async with chromium() as browser:
            manager = await browser.new_page(viewport=VIEWPORT)
            await sign_in_with(manager, dev.links["a manager"], "manager")
            await manager.goto(f"{dev.base}/outbox")
            row = manager.locator('input[name="id"]')
            await expect(row).to_have_count(1)
            row_id = await row.get_attribute("value")
            await row.check()
            await manager.get_by_role("button", name="Preview retry of the selected rows…").click()
            confirm = manager.get_by_role("button", name="Confirm: retry 1 row(s)")
            await expect(confirm).to_be_visible()  # the preview page, before its screenshot
            await shot(manager, "dev-outbox-retry-preview")
            await confirm.click()
            await expect(manager.get_by_role("status")).to_contain_text(f"Released 1 row(s): {row_id}")
            await shot(manager, "dev-outbox-retried")

            async def emailed() -> bool:
                await manager.goto(f"{dev.base}/orders/1033")
                return await manager.locator("ol.timeline li.change", has_text="sent: 250").count() == 1

            await wait_until(emailed, 60, "the published event's email on the timeline", interval=0.5)
            await expect(manager.locator("ol.timeline li.change").first.locator("h3")).to_have_text("Draft → Confirmed")
            await shot(manager, "dev-order-emailed")
            await manager.goto(f"{dev.base}/outbox")
            await expect(manager.locator('input[name="id"]')).to_have_count(0)
