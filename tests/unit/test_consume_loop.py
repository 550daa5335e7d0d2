"""The one consume loop (`service/runtime/consume.py`) over the consumer port, on the in-memory `FakeConsumer`:
offsets are committed only for durable units, outages retry the same unit, a stop between units leaves the
rest for redelivery, and a revocation commits what is done of the revoked partitions first. No broker."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from service.adapters.errors import Unavailable
from service.domain.commands import SourceMessage
from service.runtime.consume import ConsumeLoop
from service.runtime.health import Progress
from service.runtime.metrics import Metrics
from service.runtime.retry import OutageRetry
from tests.helpers.fakes import FakeConsumer

TOPIC = "events"


class OneAtATime:
    """A strategy like the notifier's: each message its own unit. `fail_once` makes the first try of those
    offsets fail with an outage; `stop_after` sets the stop event once that many units are durable."""

    def __init__(self, stop: asyncio.Event, max_records: int = 100, fail_once: Sequence[int] = (),
                 stop_after: int | None = None) -> None:
        self.stop = stop
        self.max_records = max_records
        self.fail_once = set(fail_once)
        self.stop_after = stop_after
        self.tries: list[tuple[int, int]] = []  # (partition, offset) of each try
        self.durable: list[tuple[int, int]] = []

    def units(self, batch: Sequence[SourceMessage]) -> Sequence[Sequence[SourceMessage]]:
        return [[m] for m in batch]

    async def make_durable(self, unit: Sequence[SourceMessage]) -> None:
        (m,) = unit
        self.tries.append((m.partition, m.offset))
        if m.offset in self.fail_once:
            self.fail_once.discard(m.offset)
            raise Unavailable("the database went away")
        self.durable.append((m.partition, m.offset))
        if self.stop_after is not None and len(self.durable) == self.stop_after:
            self.stop.set()


def loop_over(consumer: FakeConsumer, strategy: OneAtATime, commit_interval_s: float = 0.0) -> ConsumeLoop:
    metrics, progress = Metrics("test"), Progress(60)
    return ConsumeLoop(consumer, TOPIC, strategy, OutageRetry(0.001, 0.001, metrics, progress), progress, metrics,
                       commit_interval_s)


def with_records(counts: dict[int, int]) -> FakeConsumer:
    consumer = FakeConsumer()
    for partition, count in counts.items():
        for n in range(count):
            consumer.append(TOPIC, partition, f"{partition}-{n}".encode())
    return consumer


async def run_until_drained(loop: ConsumeLoop, consumer: FakeConsumer, stop: asyncio.Event) -> None:
    await loop.start()
    task = asyncio.create_task(loop.run(stop))
    drained = asyncio.create_task(consumer.drained.wait())
    await asyncio.wait({task, drained}, return_when=asyncio.FIRST_COMPLETED)
    stop.set()
    await task
    drained.cancel()


class TestCommits:
    async def test_each_partition_is_committed_past_its_last_durable_message_and_the_consumer_stopped(self):
        """Two partitions consumed to the end: each committed at its last offset + 1, and the consumer stopped."""
        stop = asyncio.Event()
        consumer = with_records({0: 3, 1: 2})
        strategy = OneAtATime(stop)
        await run_until_drained(loop_over(consumer, strategy), consumer, stop)
        assert consumer.committed == {(TOPIC, 0): 3, (TOPIC, 1): 2}
        assert strategy.durable == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)] and consumer.stopped

    async def test_an_outage_retries_the_same_unit_and_skips_nothing(self):
        """The unit that met an outage is tried again, then the rest; everything is committed once durable."""
        stop = asyncio.Event()
        consumer = with_records({0: 3})
        strategy = OneAtATime(stop, fail_once=[1])
        await run_until_drained(loop_over(consumer, strategy), consumer, stop)
        assert strategy.tries == [(0, 0), (0, 1), (0, 1), (0, 2)]
        assert consumer.committed == {(TOPIC, 0): 3}

    async def test_a_stop_between_units_leaves_the_rest_uncommitted(self):
        """SIGTERM while the second of four units is made durable: it is finished and committed, the last two are
        left for redelivery."""
        stop = asyncio.Event()
        consumer = with_records({0: 4})
        strategy = OneAtATime(stop, stop_after=2)
        loop = loop_over(consumer, strategy)
        await loop.start()
        await loop.run(stop)
        assert strategy.durable == [(0, 0), (0, 1)] and consumer.committed == {(TOPIC, 0): 2}


class TestRebalance:
    async def test_a_revocation_commits_what_is_done_of_the_revoked_partition_inside_the_callback(self):
        """Within the commit interval the second batch's offsets wait; the rebalance that revokes their partition
        commits them from its callback, before the partition goes."""
        stop = asyncio.Event()
        consumer = with_records({0: 2, 1: 2})
        consumer.rebalance_at_poll[3] = ({(TOPIC, 1)}, set())
        strategy = OneAtATime(stop, max_records=2)
        await run_until_drained(loop_over(consumer, strategy, commit_interval_s=3600), consumer, stop)
        assert consumer.commits[:2] == [({(TOPIC, 0): 2}, False), ({(TOPIC, 1): 2}, True)]
        assert consumer.assignment() == {(TOPIC, 0)}

    async def test_a_commit_the_group_refuses_after_a_rebalance_is_logged_not_fatal(self):
        """`CommitRefused` (the group moved on): the loop goes on and stops cleanly; nothing is recorded committed."""
        stop = asyncio.Event()
        consumer = with_records({0: 2})
        consumer.refuse_commits = True
        strategy = OneAtATime(stop)
        await run_until_drained(loop_over(consumer, strategy), consumer, stop)
        assert strategy.durable == [(0, 0), (0, 1)] and consumer.commits == [] and consumer.stopped
