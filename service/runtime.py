"""Process plumbing shared by the worker and the notifier: signals, outage retries, health probes."""

from __future__ import annotations

import asyncio
import signal

import structlog

from service.adapters.database import create_pool
from service.faults import outage_retrying
from service.observability import Metrics, Progress
from service.settings import Settings

log = structlog.get_logger("orderstatus.runtime")


def install_signal_handlers(stop: asyncio.Event) -> None:
    """SIGTERM/SIGINT ask for a clean stop: the in-flight batch is finished and committed first."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


def run_until_signalled(run_service, settings: Settings) -> int:
    """A process entrypoint: run `run_service(settings, stop)` until SIGTERM/SIGINT set `stop`."""

    async def run() -> int:
        stop = asyncio.Event()
        install_signal_handlers(stop)
        return await run_service(settings, stop)

    return asyncio.run(run())


class Retrying:
    """Builds outage retries that log, count and mark the process paused (not ready) while they wait."""

    def __init__(self, settings: Settings, metrics: Metrics, progress: Progress) -> None:
        self.settings = settings
        self.metrics = metrics
        self.progress = progress

    def __call__(self, dependency: str):
        def on_retry(state) -> None:
            exc = state.outcome.exception() if state.outcome else None
            self.metrics.outages.labels(self.metrics.service, dependency).inc()
            self.progress.paused_reason = f"{dependency}: {type(exc).__name__}"
            log.warning("outage, backing off", dependency=dependency, attempt=state.attempt_number,
                        error=repr(exc), sleep=round(state.upcoming_sleep, 2))

        return outage_retrying(self.settings.retry_initial_s, self.settings.retry_max_s, on_retry)

    def resumed(self) -> None:
        if self.progress.paused_reason is not None:
            log.info("resumed", after=self.progress.paused_reason)
        self.progress.paused_reason = None


async def open_pool(settings: Settings, retrying: Retrying):
    async for attempt in retrying("postgres"):
        with attempt:
            pool = await create_pool(settings.database_url, size=settings.database_pool_size)
    retrying.resumed()
    return pool


async def watch_health(pool, kafka_client, progress: Progress, stop: asyncio.Event, every: float = 2.0) -> None:
    """Probe Postgres and the broker so /readyz says false while either is unreachable."""
    while not stop.is_set():
        try:
            async with asyncio.timeout(every):
                async with pool.acquire() as conn:
                    await conn.fetchval("SELECT 1")
            progress.database_ok = True
        except Exception:
            progress.database_ok = False
        try:
            async with asyncio.timeout(every):
                await kafka_client.fetch_all_metadata()
            progress.kafka_ok = True
        except Exception:
            progress.kafka_ok = False
        try:
            await asyncio.wait_for(stop.wait(), every)
        except asyncio.TimeoutError:
            pass
