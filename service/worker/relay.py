"""The outbox relay: publishes unpublished outbox rows in id order, at least once (DESIGN §7.4),
and marks them published only after the broker acknowledged them."""

from __future__ import annotations

import asyncio

import structlog

from service.adapters.kafka.publishing import publish_all
from service.adapters.postgres import outbox
from service.runtime.metrics import Metrics
from service.runtime.retry import OutageRetry

log = structlog.get_logger("orderstatus.outbox")


class OutboxRelay:
    def __init__(self, pool, producer, *, batch_size: int = 1000, metrics: Metrics | None = None) -> None:
        self.pool = pool
        self.producer = producer
        self.batch_size = batch_size
        self.metrics = metrics
        self.wakeup = asyncio.Event()

    async def publish_pending(self) -> int | None:
        """Publish one batch; returns how many were published, or None when another relay holds the lock."""
        async with outbox.unpublished(self.pool, self.batch_size) as batch:
            if batch is None:
                return None
            if not batch.rows:
                return 0
            await publish_all(self.producer, batch.rows)
            await batch.mark_published()
        if self.metrics is not None:
            self.metrics.published.labels(self.metrics.service).inc(len(batch.rows))
        return len(batch.rows)

    async def drain(self) -> None:
        """Publish until nothing is left, or another relay holds the lock (it publishes our rows too)."""
        while True:
            published = await self.publish_pending()
            if not published or published < self.batch_size:
                return

    async def run(self, stop: asyncio.Event, retry: OutageRetry, poll_interval: float = 0.2,
                  error_backoff: float = 5.0) -> None:
        """Loop until `stop`: wake on local commits, otherwise poll for rows other processes left.

        Outages are retried with backoff; any other failure (a row the broker refuses for good) is
        logged and retried after `error_backoff`, so the relay never dies and never skips a row."""
        while not stop.is_set():
            try:
                await asyncio.wait_for(self.wakeup.wait(), poll_interval)
            except asyncio.TimeoutError:
                pass
            self.wakeup.clear()
            try:
                async for attempt in retry("outbox"):
                    with attempt:
                        await self.drain()
            except Exception as exc:
                log.error("outbox publish failed; retrying", error=repr(exc))
                try:
                    await asyncio.wait_for(stop.wait(), error_backoff)
                except asyncio.TimeoutError:
                    pass
