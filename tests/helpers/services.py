"""The worker and the notifier run in the test's own event loop, as `orderstatus worker|notifier` runs them."""

from __future__ import annotations

import asyncio
import contextlib

from service.runtime.settings import Settings


@contextlib.asynccontextmanager
async def running(run_service, settings: Settings, name: str):
    """Run a service's `run_*(settings, stop, ready)` in this loop; on exit stop it and check it exits 0."""
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run_service(settings, stop, ready))
    waiter = asyncio.create_task(ready.wait())
    done, _ = await asyncio.wait({task, waiter}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        waiter.cancel()
        task.result()
        raise AssertionError(f"{name} exited at start-up")
    try:
        yield task
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 60) == 0


def running_worker(settings: Settings):
    """`async with running_worker(settings) as task:` a worker (consumer, relay, HTTP) in this process."""
    from service.entrypoints.services import run_worker

    return running(run_worker, settings, "worker")


def running_notifier(settings: Settings):
    """`async with running_notifier(settings) as task:` a notifier in this process."""
    from service.entrypoints.services import run_notifier

    return running(run_notifier, settings, "notifier")
