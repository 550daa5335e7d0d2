"""The outbox relay: publishes unpublished outbox rows in id order, at least once (DESIGN §7.4),
and records them published only after the broker acknowledged them.

Publishing scales out with the workers: the outbox is sharded by commands partition — an order's
events are in the shard of the partition its commands are keyed to, other rows in their command's —
and each worker's relay publishes the shards of the partitions it owns, each under its own lock (one
relay at a time per shard, so an order's events keep their order). A round takes every shard of its
lane it can lock, so the round trips to Postgres are paid once for all of them. A rebalance hands the
shard over with the partition: the old owner finishes the round it holds the shard's lock for, the new
owner takes the lock next. A periodic sweep publishes rows left in a shard nobody owns now.

A round (lock, send, settle) is `service.worker.relay_round`; what it tells the logs and metrics is
`service.worker.relay_metrics`; the outbox is reached through the `OutboxStore` port
(`service.worker.relay_store`). This module is the scheduling: which shards, when, in how many lanes. A
topic this worker's user may not write stops the relay (and the worker) with one line, its rows left to
publish once the ACL is granted."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import NamedTuple

from service.adapters.errors import AccessRefused
from service.domain.outbox import OutboxStats
from service.runtime.metrics import Metrics
from service.runtime.retry import OutageRetry
from service.worker.ports import Producer
from service.worker.relay_metrics import record_error, record_round, record_stats
from service.worker.relay_round import publish_round
from service.worker.relay_store import OutboxStore


class Round(NamedTuple):
    settled: int  # rows published or parked
    more: set[int]  # shards whose part was cut by the round's row or byte limit: go on with them


class OutboxRelay:
    def __init__(self, store: OutboxStore, producer: Producer, *, batch_size: int = 1000,
                 metrics: Metrics | None = None, stats_every_s: float = 5.0,
                 owned_shards: Callable[[], Iterable[int]] = lambda: (0,),
                 sweep_every_s: float = 10.0, concurrency: int = 1, round_bytes: int = 8 * 1_048_576) -> None:
        self.store = store
        self.round_bytes = round_bytes  # payload bytes one round holds at most (plus one row): bounded memory
        self.concurrency = concurrency  # rounds published at once (lanes of shards), each on a connection
        self.owned_shards = owned_shards
        self.shards: set[int] = set()  # the last owned shards seen: what a stop drains
        self.sweep_every_s = sweep_every_s
        self._swept_at = time.monotonic()
        self.producer = producer
        self.batch_size = batch_size
        self.metrics = metrics
        self.stats_every_s = stats_every_s
        self.stats: OutboxStats | None = None
        self._stats_at = float("-inf")
        self.wakeup = asyncio.Event()
        self._due: set[int] = set()  # shards this process committed rows to since the relay last looked
        self._looked_at = float("-inf")  # when every owned shard was last drained

    def notify(self, shards: Iterable[int]) -> None:
        """Rows were committed to these shards: publish the ones this worker owns now."""
        self._due.update(shards)
        self.wakeup.set()

    async def publish_pending(self, shards: Iterable[int] = (0,)) -> Round | None:
        """Publish one round of the shards (those another relay does not hold); returns how many rows it
        settled (published or parked) and which shards may have more, or None when other relays hold
        every one of them. An outage is raised after the acknowledged rows are recorded."""
        report = await publish_round(self.store, self.producer, list(shards), self.batch_size, self.round_bytes)
        if report is None:
            return None
        record_round(report, self.metrics)
        if report.outage is not None:
            raise report.outage
        if report.access_refused is not None:
            raise report.access_refused
        return Round(report.settled, report.more)

    def _owned(self) -> set[int]:
        self.shards = set(self.owned_shards()) or self.shards
        return self.shards

    async def drain(self, shards: Iterable[int] | None = None) -> None:
        """Publish the shards (by default the owned ones) until nothing is left in them, or another relay
        holds a shard (it publishes those rows)."""
        if shards is None:
            shards = self._owned()
        ordered = sorted(shards)
        lanes = [ordered[i::self.concurrency] for i in range(min(self.concurrency, len(ordered)))]

        async def drain_lane(lane: list[int]) -> None:
            while lane:
                done = await self.publish_pending(lane)
                if done is None or not done.settled:
                    return
                lane = sorted(done.more)

        # lanes side by side: a round waits for the broker's acknowledgements (a linger and a round trip),
        # which another lane's round can use; a shard is in one lane, so its rounds stay in order
        results = await asyncio.gather(*(drain_lane(lane) for lane in lanes), return_exceptions=True)
        failure = next((r for r in results if isinstance(r, BaseException)), None)
        if failure is not None:
            raise failure

    async def sweep(self) -> None:
        """Publish what waited longer than a sweep interval in any shard: no row is left to an owner
        that is gone."""
        self._swept_at = time.monotonic()
        await self.drain(await self.store.shards_waiting(self.sweep_every_s))

    async def refresh_stats(self) -> OutboxStats:
        """Backlog, age of the oldest unpublished row and parked rows, for /status and the gauges."""
        self.stats = await self.store.stats()
        self._stats_at = time.monotonic()
        record_stats(self.stats, self.metrics)
        return self.stats

    async def run(self, stop: asyncio.Event, retry: OutageRetry, poll_interval: float = 0.2,
                  error_backoff: float = 5.0) -> None:
        """Loop until `stop`: on local commits publish the owned shards they wrote to; every
        `poll_interval` every owned shard (rows other processes left: an override's items of orders
        in our partitions, rows written before a rebalance). A round of an untouched shard costs a few
        round trips to Postgres for nothing, so a commit does not look at every shard.

        Outages are retried with backoff; a refused ACL ends the relay (`AccessRefused`); any other failure is
        logged and retried after `error_backoff`."""
        while not stop.is_set():
            try:
                await asyncio.wait_for(self.wakeup.wait(), poll_interval)
            except asyncio.TimeoutError:
                pass
            self.wakeup.clear()
            due, self._due = self._due, set()
            try:
                async for attempt in retry("outbox"):
                    with attempt:
                        if time.monotonic() - self._looked_at >= poll_interval:
                            self._looked_at = time.monotonic()
                            await self.drain()
                        elif due:
                            await self.drain(due & self._owned())
                        if time.monotonic() - self._swept_at >= self.sweep_every_s:
                            await self.sweep()
                        if time.monotonic() - self._stats_at >= self.stats_every_s:
                            await self.refresh_stats()
            except AccessRefused:  # no retry grants an ACL: the worker stops with the reason
                raise
            except Exception as exc:
                record_error(exc, self.metrics)
                try:
                    await asyncio.wait_for(stop.wait(), error_backoff)
                except asyncio.TimeoutError:
                    pass
