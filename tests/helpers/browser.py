"""The operator console in tests: its settings (keys, a free port), tokens, a console running in the test's
event loop, an HTTP client that signs in and reads CSRF tokens from the pages, and Debian's Chromium under
Playwright (its own browser download is not reachable: `apt-get install chromium`)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from datetime import timedelta
from pathlib import Path

import aiohttp

from service.devkit.embedded import free_port
from service.runtime.auth import issue_token, new_key_pair
from service.runtime.settings import Settings
from tests.helpers.waiting import wait_until

ISSUER, AUDIENCE = "https://id.example.com", "orderstatus"
PRIVATE, PUBLIC = new_key_pair()
CHROMIUM = "/usr/bin/chromium"
# ORDERSTATUS_CONSOLE_SHOTS=docs/console refreshes the README's pictures
SHOTS = os.path.join(os.environ.get("ORDERSTATUS_CONSOLE_SHOTS", "/tmp"), "console-{}.png")
SERIOUS = ("serious", "critical")
VIEWPORT = {"width": 1366, "height": 768}  # a laptop screen


def console_settings(settings: Settings, folder: Path, **changes) -> Settings:
    """The test's settings with a verification key, an issuer and audience and a free console port."""
    public = folder / "console-signing.pub.pem"
    public.write_bytes(PUBLIC)
    return settings.model_copy(update={"auth_public_keys": str(public), "auth_issuer": ISSUER,
                                       "auth_audience": AUDIENCE, "console_port": free_port(), **changes})


def token(role: str, sub: str | None = None, name: str | None = None, ttl: timedelta = timedelta(hours=1),
          **extra) -> str:
    claims = {"client_id": "c-1"} if role == "client" else {}
    claims.update(extra)
    return issue_token(PRIVATE, sub=sub or f"{role}-1", role=role, name=name, ttl=ttl, issuer=ISSUER,
                       audience=AUDIENCE, **claims)


@contextlib.asynccontextmanager
async def running_console(settings: Settings):
    """`async with running_console(settings) as base_url:` the console in this loop, stopped (exit 0) after."""
    from service.entrypoints.cli.console import run_console

    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run_console(settings, stop, ready))
    waiter = asyncio.create_task(ready.wait())
    done, _ = await asyncio.wait({task, waiter}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        waiter.cancel()
        task.result()
        raise AssertionError("the console exited at start-up")
    try:
        yield f"http://127.0.0.1:{settings.console_port}"
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 60) == 0


CSRF = re.compile(r'name="csrf" value="([0-9a-f]{64})"')


class ConsoleClient:
    """A browser-like HTTP client of the console: a cookie jar, redirects not followed, CSRF read from pages."""

    def __init__(self, base_url: str) -> None:
        self.base = base_url
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    async def __aenter__(self) -> "ConsoleClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.http.close()

    async def sign_in(self, token_text: str) -> aiohttp.ClientResponse:
        async with self.http.post(f"{self.base}/sign-in", data={"token": token_text, "next": "/orders"},
                                  allow_redirects=False) as response:
            await response.read()
            return response

    async def get(self, path: str) -> tuple[int, str]:
        async with self.http.get(f"{self.base}{path}", allow_redirects=False) as response:
            return response.status, await response.text()

    async def csrf(self, path: str = "/orders") -> str:
        status, text = await self.get(path)
        assert status == 200, (status, text[:300])
        return CSRF.search(text).group(1)

    async def post(self, path: str, data, follow: bool = False) -> tuple[int, str]:
        async with self.http.post(f"{self.base}{path}", data=data, allow_redirects=follow) as response:
            return response.status, await response.text()

    async def wait_until_listed(self, partition: int, offset: int, path: str = "/dead-letters",
                                timeout: float = 30) -> str:
        """Wait until the page at `path` lists the dead letter at (partition, offset) (the console's indexer has
        read it); returns the listing's link text, `href="/dead-letters/P/O"`."""
        listed = f'href="/dead-letters/{partition}/{offset}"'

        async def indexed() -> bool:
            return listed in (await self.get(path))[1]

        await wait_until(indexed, timeout, "the console's indexer to list the dead letter")
        return listed


@contextlib.asynccontextmanager
async def chromium():
    """A headless Debian Chromium under Playwright: `async with chromium() as browser:`."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                   args=["--no-sandbox", "--disable-gpu"])
        try:
            yield browser
        finally:
            await browser.close()


async def shot(page, name: str, full_page: bool = False) -> None:
    """Save the page as a screenshot and check it with axe-core: no serious or critical accessibility violation."""
    from axe_playwright_python.async_playwright import Axe

    await page.screenshot(path=SHOTS.format(name), full_page=full_page)
    results = await Axe().run(page)
    serious = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3]) for v in results.response["violations"]
               if v["impact"] in SERIOUS]
    assert serious == [], f"{name}: {serious}"
