"""The one consume loop of the worker and the notifier (DESIGN §7, the arroyo way).

poll a batch → split it into units (the strategy decides: the worker makes a whole batch durable
in one transaction, the notifier one event at a time) → make each unit durable, backing off
through outages with the one retry policy and never skipping → remember `offset + 1` of each
durable unit → commit after the batch once the commit interval has passed, when a poll comes back
empty, on partition revocation and on stop. A stop request between units leaves the rest
uncommitted: it is redelivered and deduped."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

import structlog

from service.adapters.errors import PositionGap
from service.domain.commands import SourceMessage
from service.runtime.consumer import Consumer, Partition
from service.runtime.health import Progress
from service.runtime.metrics import Metrics
from service.runtime.offsets import CommitOnRevoke, OffsetCommitter
from service.runtime.positions import DatabasePositions
from service.runtime.retry import OutageRetry

log = structlog.get_logger("orderstatus.consume")


class Strategy(Protocol):
    max_records: int

    def units(self, batch: Sequence[SourceMessage]) -> Sequence[Sequence[SourceMessage]]:
        """The poll batch cut into units made durable (and retried) as a whole, in order."""

    async def make_durable(self, unit: Sequence[SourceMessage]) -> None:
        """Process the unit until its outcome is durable; outages propagate to be retried."""


class ConsumeLoop:
    def __init__(self, consumer: Consumer, topic: str, strategy: Strategy, retry: OutageRetry, progress: Progress,
                 metrics: Metrics, commit_interval_s: float = 0.0,
                 positions: DatabasePositions | None = None,
                 on_rewind: Callable[[dict[tuple[str, int], tuple[int, int]]], None] | None = None) -> None:
        self.consumer = consumer
        self.positions = positions  # where an assigned partition starts, who writes positions (issue 24)
        self.on_rewind = on_rewind  # told each rewound partition's window (database position, where it had got)
        self._gaps: dict[Partition, tuple[int, int]] = {}  # the last gap rewound per partition (position, first)
        self.topic = topic
        self.strategy = strategy
        self.retry = retry
        self.progress = progress
        self.metrics = metrics
        self.offsets = OffsetCommitter(consumer, progress, commit_interval_s)
        self.lag_every_s = 5.0
        self._lag_at = float("-inf")
        self._lag_labels: set[tuple[str, str]] = set()

    async def start(self) -> None:
        listener = CommitOnRevoke(self.offsets, None if self.positions is None else self.positions.on_assigned)
        self.consumer.subscribe([self.topic], on_assigned=listener.on_assigned, on_revoked=listener.on_revoked)
        async for attempt in self.retry("kafka"):
            with attempt:
                await self.consumer.start()
        self.retry.resumed()

    async def run(self, stop: asyncio.Event, check: Callable[[], None] = lambda: None,
                  after_batch: Callable[[], Awaitable[None]] | None = None) -> None:
        """Consume until `stop`; `check` may raise to end the loop (a dead helper task); the consumer is
        stopped at the end, after the last commit."""
        try:
            while not stop.is_set():
                check()
                sources = await self.consumer.poll(timeout_s=0.5, max_records=self.strategy.max_records)
                self.progress.polled()
                if time.monotonic() - self._lag_at >= self.lag_every_s:
                    await self.export_lag()
                if not sources:
                    await self.offsets.commit_idle()  # idle: nothing durable waits for the interval
                    continue
                if not await self._make_durable(list(sources), stop):
                    break
                if after_batch is not None:  # first: the outcomes are durable, their publishing need not wait
                    await after_batch()
                await self.offsets.commit_due()
        finally:
            await self.offsets.commit()
            await self.consumer.stop()

    def partition_count(self) -> int | None:
        """How many partitions the topic has, as the consumer's metadata knows (None before it does)."""
        partitions = self.consumer.partitions_for(self.topic)
        return len(partitions) if partitions else None

    def owned_partitions(self) -> set[int]:
        """The partitions of the topic assigned to this consumer now."""
        return {tp.partition for tp in self.consumer.assignment() if tp.topic == self.topic}

    async def lag(self) -> dict[str, int | None]:
        """Per assigned partition: messages between this consumer's position and the partition's end."""
        lag: dict[str, int | None] = {}
        for tp in sorted(self.consumer.assignment()):
            end = self.consumer.highwater(tp)
            try:
                position = await asyncio.wait_for(self.consumer.position(tp), 1.0)
            except Exception:  # no position yet (assigned a moment ago) or the broker is unreachable
                position = None
            lag[f"{tp.topic}:{tp.partition}"] = None if end is None or position is None else max(end - position, 0)
        return lag

    async def export_lag(self) -> None:
        """Set `orderstatus_consumer_lag{service,topic,partition}` from `lag()`; partitions no longer assigned
        (or without a position yet) are dropped from the gauge, not left at their last value."""
        self._lag_at = time.monotonic()
        try:
            lag = await self.lag()
        except Exception as exc:  # the gauge must never stop the loop
            log.warning("consumer lag not measured", error=repr(exc))
            return
        gauge, service = self.metrics.consumer_lag, self.metrics.service
        current: set[tuple[str, str]] = set()
        for where, value in lag.items():
            if value is None:
                continue
            topic, partition = where.rsplit(":", 1)
            gauge.labels(service, topic, partition).set(value)
            current.add((topic, partition))
        for topic, partition in self._lag_labels - current:
            gauge.remove(service, topic, partition)
        self._lag_labels = current

    async def rewind(self, stored: dict[tuple[str, int], int], undone: Sequence[SourceMessage]) -> None:
        """Seek back after a PositionGap (issue 24): each gapped partition to the database's position (the
        messages from there to the unit's first one are decided again: logged and counted), every other
        partition of the undone messages to the first of them; nothing of a gapped partition stays pending
        for Kafka. The same gap found again right after a rewind to it holds no records (a transactional
        producer's markers, records retention removed): the position is moved past it (`store.bridge`) and the
        unit read again, instead of rewinding for ever."""
        seek: dict[Partition, int] = {}
        for source in undone:
            where = Partition(source.topic, source.partition)
            seek[where] = min(source.offset, seek.get(where, source.offset))
        gaps = {Partition(*where): position for where, position in stored.items()}
        empty = {where: seek[where] for where, position in gaps.items()
                 if where in seek and self._gaps.get(where) == (position, seek[where])}
        if empty and self.positions is not None:
            for where, first in sorted(empty.items()):
                log.warning("no records between the database's position and the next record: the position moves "
                            "past them", topic=where.topic, partition=where.partition, database_offset=gaps[where],
                            next_offset=first)
                del gaps[where]
                self._gaps.pop(where, None)
            async for attempt in self.retry("postgres"):
                with attempt:
                    await self.positions.store.bridge({(w.topic, w.partition): first for w, first in empty.items()})
        if self.on_rewind is not None and gaps:
            self.on_rewind({(w.topic, w.partition): (position, seek.get(w, position)) for w, position in gaps.items()})
        for where, position in sorted(gaps.items()):
            again = max(seek.get(where, position) - position, 0)
            log.warning("the database is behind this consumer (it lost commits): these messages will be processed "
                        "again", topic=where.topic, partition=where.partition, database_offset=position, again=again)
            self.metrics.consumer_rewound.labels(self.metrics.service, where.topic, str(where.partition)).inc(again)
            self._gaps[where] = (position, seek.get(where, position))
            seek[where] = position
            self.offsets.pending.pop(where, None)
        assigned = self.consumer.assignment()
        self.consumer.seek({where: offset for where, offset in seek.items() if where in assigned})

    async def _make_durable(self, sources: list[SourceMessage], stop: asyncio.Event) -> bool:
        """Every unit durable and marked done, in order; False when a stop came first."""
        started = time.perf_counter()
        units = self.strategy.units(sources)
        durable: list[SourceMessage] = []
        for index, unit in enumerate(units):
            # the unit in hand is finished on SIGTERM; the ones after it are left for redelivery
            if index and stop.is_set():
                await self._positions_of(durable, stop)
                return False
            try:
                if not await self.retry.until_done(lambda: self.strategy.make_durable(unit), stop):
                    await self._positions_of(durable, stop)
                    return False
            except PositionGap as gap:  # the database lost commits (a failover): read from its positions again
                await self.rewind(gap.positions, [s for later in units[index:] for s in later])
                return True
            for source in unit:
                self.offsets.done(Partition(source.topic, source.partition), source.offset)
            durable.extend(unit)
        if not await self._positions_of(durable, stop):
            return False
        self.metrics.batch_seconds.labels(self.metrics.service).observe(time.perf_counter() - started)
        return True

    async def _positions_of(self, durable: list[SourceMessage], stop: asyncio.Event) -> bool:
        """With positions written by the loop: write them past the durable messages (before their offsets go to
        Kafka); on PositionGap rewind their partitions. False when a stop came first."""
        if self.positions is None or not self.positions.written_by_loop or not durable:
            return True
        nexts: dict[tuple[str, int], int] = {}
        firsts: dict[tuple[str, int], int] = {}
        for source in durable:
            where = (source.topic, source.partition)
            nexts[where] = max(source.offset + 1, nexts.get(where, 0))
            firsts[where] = min(source.offset, firsts.get(where, source.offset))
        try:
            return await self.retry.until_done(lambda: self.positions.store.advance(nexts, firsts), stop)
        except PositionGap as gap:
            await self.rewind(gap.positions, [s for s in durable if (s.topic, s.partition) in gap.positions])
            return True
