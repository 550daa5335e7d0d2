"""HTTP probes of a running worker or notifier: GET a path, and readiness (/readyz) over time."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from tests.helpers.waiting import wait_until


async def get(port: int, path: str) -> tuple[int, object]:
    """(status, body) of GET http://127.0.0.1:PORT/PATH; a JSON body is decoded, any other is text."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        async with session.get(f"http://127.0.0.1:{port}{path}") as response:
            body = await response.json() if response.content_type == "application/json" else await response.text()
            return response.status, body


def _says(body: dict, detail: dict) -> bool:
    """The body has each of the given values (of the same type: `False` is not `0`)."""
    return all(type(body.get(k)) is type(v) and body.get(k) == v for k, v in detail.items())


async def readiness(port: int) -> tuple[int, dict]:
    """(status, body) of /readyz."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        async with session.get(f"http://127.0.0.1:{port}/readyz") as response:
            return response.status, await response.json()


async def wait_readiness(port: int, ready: bool, timeout: float, **detail) -> dict:
    """Until /readyz says `ready` (and its detail has the given values); returns the body."""
    seen: list = []

    async def probe():
        status, body = await readiness(port)
        seen[:] = [status, body]
        return (status == 200) == ready and _says(body, detail)

    try:
        await wait_until(probe, timeout, f"/readyz ready={ready} {detail}", interval=0.1)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last answer {seen}") from None
    return seen[1]


async def assert_stays_not_ready(port: int, seconds: float, **detail) -> None:
    """/readyz answers 503 (with the given detail) on every probe for `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status, body = await readiness(port)
        assert status == 503 and _says(body, detail), body
        await asyncio.sleep(0.2)
