"""The database as the source of truth for progress (issue 24): the batch's position is the offset after its
messages, and an assigned partition starts from the database's position where it is behind Kafka's committed
offset — counted and logged — and from Kafka's otherwise. Over the in-memory consumer; no broker."""

from __future__ import annotations

import asyncio

from service.adapters.errors import PositionGap
from service.domain.commands import SourceMessage
from service.runtime.consume import ConsumeLoop
from service.runtime.consumer import Partition
from service.runtime.health import Progress
from service.runtime.metrics import Metrics
from service.runtime.positions import DatabasePositions, starting_offsets
from service.runtime.retry import OutageRetry
from service.worker.batch import next_positions
from tests.helpers.fakes import FakeConsumer
from tests.unit.test_consume_loop import TOPIC, OneAtATime, run_until_drained, with_records

P0, P1, P2, P3 = (Partition(TOPIC, n) for n in range(4))


class FlakyStore:
    """The database's positions; `outages` reads fail first, as while a standby is promoted."""

    def __init__(self, positions: dict[tuple[str, int], int], outages: int = 0) -> None:
        self.positions = positions
        self.outages = outages
        self.reads = 0

    async def read(self, partitions):
        self.reads += 1
        if self.reads <= self.outages:
            raise ConnectionRefusedError("the database is failing over")
        return {p: o for p, o in self.positions.items() if p in set(partitions)}

    async def advance(self, next_offsets, first_offsets) -> None:
        raise AssertionError("the worker's positions are written by its units of work")

    async def bridge(self, next_offsets) -> None:
        self.positions.update(next_offsets)


class TestNextPositions:
    def test_each_partition_moves_past_its_last_message(self):
        """Per partition, the offset after the highest message of the batch, whatever the order."""
        sources = [SourceMessage("c", 0, 7, None, b""), SourceMessage("c", 1, 3, None, b""),
                   SourceMessage("c", 0, 5, None, b"")]
        assert next_positions(sources) == {("c", 0): 8, ("c", 1): 4}


class TestStartingOffsets:
    def test_the_database_behind_kafka_rewinds_and_says_by_how_much(self):
        """Behind: seek to the database's position, N messages again. Ahead or equal: Kafka's offset stands
        (a commit not sent before a crash, an operator's replay). No Kafka offset (the topic made again): the reset
        policy, never a position from the topic's earlier life. No database position: left alone."""
        seek, rewound = starting_offsets({P0: 40, P1: 90, P2: 50, P3: 7}, {P0: 50, P1: 50, P2: 50, P3: None})
        assert seek == {P0: 40}
        assert rewound == {P0: 10}


class TestStartFromDatabase:
    async def test_a_partition_whose_database_position_is_behind_is_read_again_from_it(self):
        """Kafka committed 5 of partition 0 but the database holds only 2: messages 2..4 are processed again,
        counted in orderstatus_consumer_rewound_total; partition 1 (database ahead) starts at Kafka's offset."""
        stop = asyncio.Event()
        consumer = with_records({0: 6, 1: 3})
        consumer.committed = {P0: 5, P1: 1}
        metrics, progress = Metrics("test"), Progress(60)
        retry = OutageRetry(0.001, 0.001, metrics, progress)
        store = FlakyStore({(TOPIC, 0): 2, (TOPIC, 1): 3}, outages=2)
        strategy = OneAtATime(stop)
        loop = ConsumeLoop(consumer, TOPIC, strategy, retry, progress, metrics, 0.0,
                           DatabasePositions(store, consumer, retry, metrics))
        await run_until_drained(loop, consumer, stop)
        assert strategy.durable == [(0, 2), (0, 3), (0, 4), (0, 5), (1, 1), (1, 2)]
        assert store.reads == 3  # the outage was waited out, not skipped
        assert metrics.registry.get_sample_value(
            "orderstatus_consumer_rewound_total", {"service": "test", "topic": TOPIC, "partition": "0"}) == 3
        assert metrics.registry.get_sample_value(
            "orderstatus_consumer_rewound_total", {"service": "test", "topic": TOPIC, "partition": "1"}) is None

    async def test_without_the_hook_kafkas_offset_is_where_it_starts(self):
        """Negative control: the same consumer without the hook skips what the database lost."""
        stop = asyncio.Event()
        consumer: FakeConsumer = with_records({0: 6})
        consumer.committed = {P0: 5}
        metrics, progress = Metrics("test"), Progress(60)
        strategy = OneAtATime(stop)
        loop = ConsumeLoop(consumer, TOPIC, strategy, OutageRetry(0.001, 0.001, metrics, progress), progress,
                           metrics, 0.0)
        await run_until_drained(loop, consumer, stop)
        assert strategy.durable == [(0, 5)]


class GapCheckingStrategy(OneAtATime):
    """Each message its own unit over a database of positions, checked as the unit of work checks them: a unit
    that starts past its partition's stored position raises PositionGap and is not durable."""

    def __init__(self, stop: asyncio.Event, positions: dict[tuple[str, int], int]) -> None:
        super().__init__(stop)
        self.positions = positions

    async def make_durable(self, unit) -> None:
        (m,) = unit
        stored = self.positions.get((m.topic, m.partition))
        if stored is not None and stored < m.offset:
            self.tries.append((m.partition, m.offset))
            raise PositionGap({(m.topic, m.partition): stored})
        await super().make_durable(unit)
        self.positions[(m.topic, m.partition)] = m.offset + 1


class TestGapWhileRunning:
    async def test_a_gap_found_by_a_unit_rewinds_the_running_consumer_to_the_database_position(self):
        """The database lost commits while the consumer ran (it is at 5, the database at 2): the unit at 5 finds
        the gap, nothing of it is durable, the consumer reads 2..5 again and counts 3 messages rewound."""
        stop = asyncio.Event()
        consumer = with_records({0: 6})
        consumer.committed = {P0: 5}
        metrics, progress = Metrics("test"), Progress(60)
        strategy = GapCheckingStrategy(stop, {(TOPIC, 0): 2})
        loop = ConsumeLoop(consumer, TOPIC, strategy, OutageRetry(0.001, 0.001, metrics, progress), progress,
                           metrics, 0.0)
        await run_until_drained(loop, consumer, stop)
        assert strategy.tries[0] == (0, 5) and strategy.durable == [(0, 2), (0, 3), (0, 4), (0, 5)]
        assert consumer.committed == {P0: 6}
        assert metrics.registry.get_sample_value(
            "orderstatus_consumer_rewound_total", {"service": "test", "topic": TOPIC, "partition": "0"}) == 3


class ConsumerSkippingMarkers(FakeConsumer):
    """Offsets in `markers` hold no records (a transactional producer's commit markers): never returned."""

    def __init__(self, markers: set[int]) -> None:
        super().__init__()
        self.markers = markers

    async def poll(self, timeout_s: float, max_records: int):
        return [m for m in await super().poll(timeout_s, max_records) if m.offset not in self.markers]


class TestGapWithoutRecords:
    async def test_a_gap_that_holds_no_records_is_bridged_not_rewound_for_ever(self):
        """The database is at 2 and offsets 2-3 are markers: the first gap rewinds to 2, the same gap comes
        back (no record between), so the position is moved to 4 and messages 4 and 5 are processed once."""
        stop = asyncio.Event()
        consumer = ConsumerSkippingMarkers({2, 3})
        for n in range(6):
            consumer.append(TOPIC, 0, f"0-{n}".encode())
        consumer.committed = {P0: 2}
        metrics, progress = Metrics("test"), Progress(60)
        store = FlakyStore({})
        strategy = GapCheckingStrategy(stop, store.positions)  # one dict: the units' writes and the store's
        retry = OutageRetry(0.001, 0.001, metrics, progress)
        store.positions[(TOPIC, 0)] = 2
        loop = ConsumeLoop(consumer, TOPIC, strategy, retry, progress, metrics, 0.0,
                           DatabasePositions(store, consumer, retry, metrics))
        await run_until_drained(loop, consumer, stop)
        assert strategy.tries[:2] == [(0, 4), (0, 4)] and strategy.durable == [(0, 4), (0, 5)]
        assert strategy.positions == {(TOPIC, 0): 6} and consumer.committed == {P0: 6}
