"""The outbox relay: publishes unpublished outbox rows in id order, at least once (DESIGN §7.4),
and records them published only after the broker acknowledged them.

Publishing scales out with the workers: the outbox is sharded by commands partition — an order's
events are in the shard of the partition its commands are keyed to, other rows in their command's —
and each worker's relay publishes the shards of the partitions it owns, each under its own lock (one
relay at a time per shard, so an order's events keep their order). A round takes every shard of its
lane it can lock, so the round trips to Postgres are paid once for all of them. A rebalance hands the
shard over with the partition: the old owner finishes the round it holds the shard's lock for, the new
owner takes the lock next. A periodic sweep publishes rows left in a shard nobody owns now.

Each round reads the rows after each shard's cursor and, once the broker has acknowledged them, moves
the cursor past them: one update per round, not one per row. A row the broker refuses for good (too
large, invalid topic) is parked — marked, counted and logged once with its id — and
publishing goes on with the next rows; the later rows of its topic and key are parked behind it, so an
order's events never overtake one another. When an outage stops a round, the cursor stops before the
first row not sent and rows acknowledged after it are marked one by one, so nothing acknowledged is
sent twice. A topic this worker's user may not write is no row's fault: the round stops there as on an
outage, and the refusal stops the relay (and the worker) with one line, its rows left to publish once the
ACL is granted."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import structlog

from service.adapters.errors import AccessRefused
from service.adapters.kafka.publishing import SENT, publish_each
from service.adapters.postgres import outbox
from service.runtime import tracing
from service.runtime.faults import is_outage
from service.runtime.metrics import Metrics
from service.runtime.retry import OutageRetry

log = structlog.get_logger("orderstatus.outbox")


class Round(NamedTuple):
    settled: int  # rows published or parked
    more: set[int]  # shards whose part was cut by the round's row or byte limit: go on with them


@dataclass
class Settled:
    through: int | None  # the new cursor: every row up to it is published or parked
    published: list[int]
    published_beyond: list[int]  # published after a row left unsettled (an outage): marked one by one
    parked: list[outbox.Parking]


def settle_round(rows: Sequence[outbox.StoredMessage], held: dict[int, int], results: dict) -> Settled:
    """What a round settled, row by row in id order: sent rows are published; refused rows are parked, and
    so are the rows held behind a parked row (one parked before, or one refused earlier in this round);
    a row an outage or a refused ACL left unsent stops the cursor before it."""
    through: int | None = None
    published: list[int] = []
    parked: list[outbox.Parking] = []
    refused_first: dict[tuple[str, bytes], int] = {}
    in_line = True  # every row so far is settled: the cursor may follow
    for row in rows:
        result = results.get(row.id)
        behind = held.get(row.id)
        if behind is None and row.key is not None and result is None:
            behind = refused_first.get((row.topic, row.key))
        if behind is not None:
            parked.append(outbox.Parking(row.id, f"held behind parked row {behind}", behind))
        elif result == SENT:
            published.append(row.id)
        elif isinstance(result, BaseException) and not _unsent(result):
            parked.append(outbox.Parking(row.id, f"{type(result).__name__}: {result}"[:1000]))
            if row.key is not None:
                refused_first.setdefault((row.topic, row.key), row.id)
        else:  # not sent: an outage or a refused ACL stopped the round
            in_line = False
            continue
        if in_line:
            through = row.id
    beyond = [i for i in published if through is None or i > through]
    return Settled(through, published, beyond, parked)


def _unsent(exc: BaseException) -> bool:
    """The row was not published, through no fault of its own: an outage, or a refused ACL."""
    return is_outage(exc) or isinstance(exc, AccessRefused)


def _by_shard(rows: Sequence[outbox.StoredMessage]) -> dict[int, list[outbox.StoredMessage]]:
    grouped: dict[int, list[outbox.StoredMessage]] = {}
    for row in rows:
        grouped.setdefault(row.shard, []).append(row)
    return grouped


class OutboxRelay:
    def __init__(self, pool, producer, *, batch_size: int = 1000, metrics: Metrics | None = None,
                 stats_every_s: float = 5.0, owned_shards: Callable[[], Iterable[int]] = lambda: (0,),
                 sweep_every_s: float = 10.0, concurrency: int = 1, round_bytes: int = 8 * 1_048_576) -> None:
        self.pool = pool
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
        self.stats: outbox.OutboxStats | None = None
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
        async with outbox.unpublished(self.pool, self.batch_size, list(shards), self.round_bytes) as batch:
            if batch is None:
                return None
            if not batch.rows:
                return Round(0, set())
            held = batch.held
            sending = [row for row in batch.rows if row.id not in held]
            with tracing.span("publish", rows=len(sending)):
                results = await publish_each(self.producer, sending, _unsent)
            by_id = dict(zip((row.id for row in sending), results))
            through: dict[int, int] = {}
            published_beyond: list[int] = []
            parked: list[outbox.Parking] = []
            published = 0
            for shard, rows in _by_shard(batch.rows).items():
                settled = settle_round(rows, held, by_id)
                if settled.through is not None:
                    through[shard] = settled.through
                published_beyond += settled.published_beyond
                parked += settled.parked
                published += len(settled.published)
            await batch.settle(through, published_beyond, parked)
        refused = [(row, error) for row, error in zip(sending, results)
                   if isinstance(error, BaseException) and not _unsent(error)]
        for row, error in refused:
            log.error("outbox row parked: the broker refused it", outbox_id=row.id, topic=row.topic,
                      size=len(row.value), error=repr(error), retry=f"orderstatus outbox retry {row.id}")
        if held:
            log.warning("outbox rows held behind parked rows", rows=len(held), behind=sorted(set(held.values())))
        outage = next((r for r in results if isinstance(r, BaseException) and is_outage(r)), None)
        if self.metrics is not None:
            self.metrics.published.labels(self.metrics.service).inc(published)
            acknowledged = time.time()  # the command's timestamp is wall-clock time too
            latency = self.metrics.end_to_end.labels(self.metrics.service)
            for row, result in zip(sending, results):
                if result == SENT and row.source_time is not None:
                    latency.observe(max(acknowledged - row.source_time.timestamp(), 0.0))
            for _, error in refused:
                self.metrics.relay_errors.labels(self.metrics.service, type(error).__name__).inc()
            if outage is not None:
                self.metrics.relay_errors.labels(self.metrics.service, type(outage).__name__).inc()
        if outage is not None:
            raise outage
        refusal = next((r for r in results if isinstance(r, AccessRefused)), None)
        if refusal is not None:
            raise refusal
        return Round(published + len(parked), batch.more)

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
        await self.drain(await outbox.shards_waiting(self.pool, self.sweep_every_s))

    async def refresh_stats(self) -> outbox.OutboxStats:
        """Backlog, age of the oldest unpublished row and parked rows, for /status and the gauges."""
        self.stats = await outbox.stats(self.pool)
        self._stats_at = time.monotonic()
        if self.metrics is not None:
            service = self.metrics.service
            self.metrics.outbox_backlog.labels(service).set(self.stats.backlog)
            self.metrics.outbox_oldest_age.labels(service).set(self.stats.oldest_age_s or 0.0)
            self.metrics.outbox_parked.labels(service).set(self.stats.parked)
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
                log.error("outbox publish failed; retrying", error=repr(exc))
                if self.metrics is not None:
                    self.metrics.relay_errors.labels(self.metrics.service, type(exc).__name__).inc()
                try:
                    await asyncio.wait_for(stop.wait(), error_backoff)
                except asyncio.TimeoutError:
                    pass
