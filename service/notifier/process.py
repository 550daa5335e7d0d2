"""The `orderstatus notifier` process: wiring of pool, consumer, mailer, health and signals."""

from __future__ import annotations

import asyncio

import structlog

from service.notifier.consumer import Notifier
from service.notifier.mailer import Mailer
from service.observability import Metrics, Progress, bound_port, start_http
from service.runtime import Retrying, open_pool, run_until_signalled, watch_health
from service.settings import Settings

log = structlog.get_logger("orderstatus.notifier")


async def run_notifier(settings: Settings, stop: asyncio.Event | None = None, ready: asyncio.Event | None = None) -> int:
    """Run until `stop` is set; `ready` is set once the consumer has started. Returns the exit code."""
    stop = stop or asyncio.Event()
    metrics = Metrics("notifier")
    progress = Progress(settings.ready_stall_seconds)
    retrying = Retrying(settings, metrics, progress)
    pool = await open_pool(settings, retrying)
    http = await start_http(settings.http_host, settings.notifier_http_port, progress, metrics)
    log.info("notifier started", http_port=bound_port(http), events_topic=settings.events_topic,
             group=settings.notifier_group, smtp=f"{settings.smtp_host}:{settings.smtp_port}")
    notifier = Notifier(settings, pool, Mailer(settings), metrics, progress, retrying)
    # aiokafka's consumer has no public client; its own connection is the one readiness must judge
    health = asyncio.create_task(watch_health(pool, notifier.consumer._client, progress, stop), name="health")
    try:
        await notifier.run(stop, ready)
    finally:
        stop.set()
        health.cancel()
        await asyncio.gather(health, return_exceptions=True)
        await http.cleanup()
        await pool.close()
        log.info("notifier stopped")
    return 0


def main(settings: Settings) -> int:
    return run_until_signalled(run_notifier, settings)
