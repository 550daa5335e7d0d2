"""The one wait-until of the tests: poll a probe until it holds, fail loudly at the deadline."""

from __future__ import annotations

import asyncio
import inspect
import time


async def wait_until(probe, timeout: float = 30.0, what: str = "the condition", *, interval: float = 0.05):
    """Call `probe()` (plain or async) until it returns something truthy, and return that.

    At the deadline it raises AssertionError naming `what`; an exception raised by the probe
    propagates at once (a probe may assert what must never happen while waiting)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(interval)
