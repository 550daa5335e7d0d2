"""The command worker: Kafka consumer mechanics around `process_isolating_poison` (DESIGN §7).

poll a batch → make its outcomes durable in Postgres (retrying outages, never skipping) → commit
`offset + 1` per partition → wake the outbox relay. Offsets are committed only after the database
commit; on revocation the pending offsets are committed; on SIGTERM the batch in hand is finished."""

from __future__ import annotations

import asyncio
import time

import structlog

from service.adapters.kafka import make_consumer, make_producer
from service.adapters.rules_store import RulesCache
from service.consuming import CommitOnRevoke, OffsetCommitter, stop_consumer
from service.faults import is_outage
from service.handlers import SourceMessage, Topics
from service.observability import Metrics, Progress, bound_port, start_http
from service.outbox import OutboxRelay
from service.processing import process_isolating_poison
from service.read_api import routes as read_routes
from service.runtime import Retrying, open_pool, run_until_signalled, watch_health
from service.settings import Settings
from service.unit_of_work import PostgresUnitOfWork, RulesNotLoaded

log = structlog.get_logger("orderstatus.worker")


class CommandWorker:
    def __init__(self, settings: Settings, pool, producer, metrics: Metrics, progress: Progress, retrying: Retrying):
        self.settings = settings
        self.pool = pool
        self.producer = producer
        self.metrics = metrics
        self.progress = progress
        self.retrying = retrying
        self.topics = Topics(events=settings.events_topic, dlq=settings.dlq_topic)
        self.rules_cache = RulesCache()
        self.relay = OutboxRelay(pool, producer, metrics=metrics)
        self.consumer = make_consumer(settings, settings.worker_group)
        self.offsets = OffsetCommitter(self.consumer, progress)

    def _uow(self) -> PostgresUnitOfWork:
        return PostgresUnitOfWork(self.pool, self.rules_cache)

    async def _make_durable(self, sources: list[SourceMessage], stop: asyncio.Event) -> bool:
        """Retry the batch through outages until it is durable; False if asked to stop meanwhile."""
        delay = self.settings.retry_initial_s
        while True:
            try:
                started = time.perf_counter()
                result = await process_isolating_poison(sources, self._uow, self.topics, self.settings.max_batch_items)
                self.metrics.batch_seconds.labels("worker").observe(time.perf_counter() - started)
                for outcome in result.outcomes:
                    self.metrics.messages.labels("worker", outcome.outcome.split(":")[0]).inc()
                if result.duplicates:
                    self.metrics.messages.labels("worker", "duplicate").inc(result.duplicates)
                self.retrying.resumed()
                return True
            except Exception as exc:
                if not (is_outage(exc) or isinstance(exc, RulesNotLoaded)):
                    raise
                dependency = "rules" if isinstance(exc, RulesNotLoaded) else "postgres"
                self.metrics.outages.labels("worker", dependency).inc()
                self.progress.paused_reason = f"{dependency}: {type(exc).__name__}"
                log.warning("batch not durable yet, backing off", error=repr(exc), size=len(sources),
                            sleep=round(delay, 2))
                try:
                    await asyncio.wait_for(stop.wait(), delay)
                    return False  # stopping: leave the batch uncommitted, it will be redelivered
                except asyncio.TimeoutError:
                    delay = min(delay * 2, self.settings.retry_max_s)  # a blip resumes fast, an outage waits

    async def run(self, stop: asyncio.Event) -> None:
        self.consumer.subscribe([self.settings.commands_topic], listener=CommitOnRevoke(self.offsets))
        async for attempt in self.retrying("kafka"):
            with attempt:
                await self.consumer.start()
        self.retrying.resumed()
        relay_stop = asyncio.Event()  # the relay outlives the consumer loop: it stops after the last batch
        relay_task = asyncio.create_task(self.relay.run(relay_stop, self.retrying), name="outbox-relay")
        try:
            while not stop.is_set():
                if relay_task.done():  # a dead relay would leave events unpublished: stop loudly instead
                    relay_task.result()
                    raise RuntimeError("the outbox relay stopped")
                batch = await self.consumer.getmany(timeout_ms=500, max_records=self.settings.kafka_max_poll_records)
                self.progress.polled()
                if not batch:
                    continue
                sources = [
                    SourceMessage(tp.topic, tp.partition, m.offset, m.key, m.value, tuple(m.headers or ()))
                    for tp, messages in batch.items()
                    for m in messages
                ]
                if not await self._make_durable(sources, stop):
                    break
                self.relay.wakeup.set()
                for tp, messages in batch.items():
                    self.offsets.done(tp, messages[-1].offset)
                await self.offsets.commit()
        finally:
            await self.offsets.commit()
            await stop_consumer(self.consumer)
            # let the relay finish the round in hand: cancelled between the broker's acks and marking the
            # rows published, it would leave those rows to be published a second time
            relay_stop.set()
            self.relay.wakeup.set()
            finished, _ = await asyncio.wait({relay_task}, timeout=10)
            if not finished:  # stuck on an outage
                relay_task.cancel()
            await asyncio.gather(relay_task, return_exceptions=True)
            try:  # publish what this process committed, but never hang the shutdown on a dead broker
                if not finished:
                    raise TimeoutError("the relay was stuck")
                await asyncio.wait_for(self.relay.drain(), 10)
            except Exception as exc:
                log.warning("outbox not drained at shutdown; the next relay publishes it", error=repr(exc))


async def run_worker(settings: Settings, stop: asyncio.Event | None = None, ready: asyncio.Event | None = None) -> int:
    stop = stop or asyncio.Event()
    metrics = Metrics("worker")
    progress = Progress(settings.ready_stall_seconds)
    retrying = Retrying(settings, metrics, progress)
    pool = await open_pool(settings, retrying)
    producer = make_producer(settings)
    async for attempt in retrying("kafka"):
        with attempt:
            await producer.start()
    http = await start_http(settings.http_host, settings.http_port, progress, metrics, read_routes(pool))
    log.info("worker started", http_port=bound_port(http), commands_topic=settings.commands_topic,
             group=settings.worker_group)
    worker = CommandWorker(settings, pool, producer, metrics, progress, retrying)
    health = asyncio.create_task(watch_health(pool, producer.client, progress, stop), name="health")
    if ready is not None:
        ready.set()
    try:
        await worker.run(stop)
    finally:
        stop.set()
        health.cancel()
        await asyncio.gather(health, return_exceptions=True)
        await http.cleanup()
        await producer.stop()
        await pool.close()
        log.info("worker stopped")
    return 0


def main(settings: Settings) -> int:
    return run_until_signalled(run_worker, settings)
