"""The command worker (DESIGN §7): the consume loop's strategy for commands, and the outbox relay
that runs beside it.

poll a batch → make its outcomes durable in Postgres as one unit (outages retried, never skipped)
→ wake the relay → commit `offset + 1` per partition. On SIGTERM the batch in hand is finished,
then the relay finishes its round and drains what this process committed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import structlog

from service.adapters.kafka.publishing import partition_of
from service.adapters.postgres.outbox_relay_store import PostgresOutboxStore
from service.adapters.postgres.rules import RulesCache
from service.adapters.postgres.positions import PostgresPositions
from service.adapters.postgres.unit_of_work import PostgresUnitOfWork
from service.contract.keys import order_key
from service.domain.commands import SourceMessage
from service.domain.events import ChangeRejected
from service.runtime import tracing
from service.runtime.consume import ConsumeLoop
from service.runtime.consumer import Consumer
from service.runtime.health import Progress
from service.runtime.metrics import Metrics
from service.runtime.positions import DatabasePositions
from service.runtime.retry import OutageRetry
from service.worker.config import BatchConfig, OrderShard, no_order_shard
from service.worker.redecided import PublishedEvents, RedecidedCheck
from service.worker.poison import process_isolating_poison
from service.worker.relay import OutboxRelay

log = structlog.get_logger("orderstatus.worker")

# rounds the relay publishes at once, each over a lane of the owned shards and on a connection of its own
# (the pool keeps one for the batches and one for probes and reads). Measured at 1,000 commands/s: one
# lane p99 65 ms, two 55 ms, seven (one shard each) 75 ms — a round per shard costs its round trips for
# a handful of rows; under a backlog two lanes publish as fast as four (within the runs' noise).
RELAY_LANES = 2


def relay_lanes(pool_size: int) -> int:
    """The relay's lanes for a pool of `pool_size` connections: RELAY_LANES, leaving two for the batches and probes."""
    return max(min(RELAY_LANES, pool_size - 2), 1)


@dataclass(frozen=True)
class WorkerConfig:
    """What the worker is configured with; the entrypoint builds it from the settings (DESIGN §3)."""

    commands_topic: str
    batch: BatchConfig
    max_poll_records: int
    commit_interval_s: float = 0.0
    relay_lanes: int = RELAY_LANES
    # the consumer group, whose positions the batches write and assignments start from (issue 24); None: not kept
    group: str | None = None


class CommandStrategy:
    """A whole poll batch is one unit: one transaction for all its commands (DESIGN §9)."""

    def __init__(self, config: WorkerConfig, pool, metrics: Metrics,
                 partition_count: Callable[[], int | None] = lambda: None,
                 written: Callable[[set[int]], None] = lambda shards: None,
                 published: PublishedEvents | None = None) -> None:
        self.written = written  # told the outbox shards each durable unit wrote to (the relay's next work)
        self.partition_count = partition_count
        self.max_records = config.max_poll_records
        self.config = config.batch
        self.group = config.group
        self.redecided = RedecidedCheck(published, config.batch.topics, metrics)
        self.pool = pool
        self.metrics = metrics
        self.rules_cache = RulesCache()

    def _uow(self) -> PostgresUnitOfWork:
        return PostgresUnitOfWork(self.pool, self.rules_cache, self.group)

    def order_shards(self) -> OrderShard:
        """An order id -> the outbox shard of its events: the commands partition its key goes to (the
        partition count read once per batch)."""
        partitions = self.partition_count()
        if partitions is None:
            return no_order_shard
        return lambda order_id: partition_of(order_key(order_id), partitions)  # DESIGN §5.3's key

    def units(self, batch: Sequence[SourceMessage]) -> Sequence[Sequence[SourceMessage]]:
        return [batch]

    async def make_durable(self, unit: Sequence[SourceMessage]) -> None:
        with tracing.span("batch", messages=len(unit)):
            result = await process_isolating_poison(unit, self._uow,
                                                    replace(self.config, order_shard=self.order_shards()))
        for outcome in result.outcomes:
            kind, _, reason = outcome.outcome.partition(":")
            self.metrics.messages.labels("worker", kind).inc()
            if kind == "invalid":  # dead-lettered: invalid on the wire, too large, or processing_failed
                self.metrics.dead_letters.labels("worker", reason).inc()
            for event in outcome.emitted:  # every rejection, override items and invalid_command included
                if isinstance(event, ChangeRejected):
                    self.metrics.rejections.labels("worker", event.reason).inc()
        self.written(result.shards)
        self.redecided.note(unit, result.outcomes)  # after a rewind: compared with the events topic (issue 24)
        if result.duplicates:
            self.metrics.messages.labels("worker", "duplicate").inc(result.duplicates)
        if result.skipped:
            self.metrics.messages.labels("worker", "skipped").inc(result.skipped)


class CommandWorker:
    def __init__(self, config: WorkerConfig, pool, producer, consumer: Consumer, metrics: Metrics, progress: Progress,
                 retry: OutageRetry, published: PublishedEvents | None = None) -> None:
        self.retry = retry
        strategy = CommandStrategy(config, pool, metrics, partition_count=lambda: self.loop.partition_count(),
                                   written=lambda shards: self.relay.notify(shards), published=published)
        positions = None if config.group is None else PostgresPositions(pool, config.group)
        self.loop = ConsumeLoop(consumer, config.commands_topic, strategy, retry, progress, metrics,
                                config.commit_interval_s,
                                None if positions is None else DatabasePositions(positions, consumer, retry, metrics),
                                on_rewind=strategy.redecided.rewound)
        self.redecided = strategy.redecided
        # the relay publishes the outbox shards of the partitions this worker owns (scale-out)
        self.relay = OutboxRelay(PostgresOutboxStore(pool), producer, metrics=metrics,
                                 owned_shards=self.loop.owned_partitions,
                                 concurrency=config.relay_lanes)

    async def status(self) -> dict:
        """The worker's part of /status: its outbox (as of the relay's last look) and its lag."""
        stats = self.relay.stats or await self.relay.refresh_stats()
        return {
            "outbox": {"unpublished": stats.backlog, "oldest_unpublished_age_s": stats.oldest_age_s,
                       "parked": stats.parked},
            "lag": await self.loop.lag(),
            "decided_again": self.redecided.status(),  # after a failover's rewind (issue 24)
        }

    async def run(self, stop: asyncio.Event) -> None:
        await self.loop.start()
        relay_stop = asyncio.Event()  # the relay outlives the consume loop: it stops after the last batch
        relay_task = asyncio.create_task(self.relay.run(relay_stop, self.retry), name="outbox-relay")

        def relay_alive() -> None:
            if relay_task.done():  # a dead relay would leave events unpublished: stop loudly instead
                relay_task.result()
                raise RuntimeError("the outbox relay stopped")

        try:
            await self.loop.run(stop, check=relay_alive)
        finally:
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
