"""The commit policy's cadence (runtime/offsets.py): durable offsets are committed at most once per
interval after batches, at once when asked (idle, stop), and only what is pending; after an empty poll, up to
the consumer's position."""

from __future__ import annotations

from service.runtime.consumer import Partition as TopicPartition
from service.runtime.health import Progress
from service.runtime.offsets import OffsetCommitter

TP = TopicPartition("commands", 0)


class FakeClock:
    """Monotonic seconds that move only when the test moves them."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class RecordingConsumer:
    def __init__(self) -> None:
        self.commits: list[dict[TopicPartition, int]] = []

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(dict(offsets))


async def batches(committer: OffsetCommitter, *last_offsets: int) -> None:
    """What the consume loop does after each durable batch."""
    for offset in last_offsets:
        committer.done(TP, offset)
        await committer.commit_due()


async def test_after_batches_offsets_are_committed_at_most_once_per_interval():
    """The first batch commits; the next ones within the interval wait, and the first commit after it
    carries the newest offset."""
    consumer, clock = RecordingConsumer(), FakeClock()
    committer = OffsetCommitter(consumer, Progress(60), interval_s=0.2, clock=clock)
    await batches(committer, 10, 20)
    clock.now += 0.19
    await batches(committer, 30, 40)
    assert consumer.commits == [{TP: 11}]  # still within the interval
    clock.now += 0.01
    await committer.commit_due()
    assert consumer.commits == [{TP: 11}, {TP: 41}]


async def test_a_commit_asked_for_goes_out_at_once_and_nothing_is_committed_twice():
    """`commit()` (an empty poll, a stop) does not wait for the interval; with nothing pending it sends nothing."""
    consumer = RecordingConsumer()
    committer = OffsetCommitter(consumer, Progress(60), interval_s=60)
    await batches(committer, 5)
    committer.done(TP, 6)
    await committer.commit()
    await committer.commit()
    assert consumer.commits == [{TP: 6}, {TP: 7}]


async def test_an_interval_of_zero_commits_after_every_batch():
    """`ORDERSTATUS_KAFKA_COMMIT_INTERVAL_MS=0`: the first wave's behaviour, a commit per batch."""
    consumer = RecordingConsumer()
    committer = OffsetCommitter(consumer, Progress(60), interval_s=0)
    await batches(committer, 1, 2, 3)
    assert consumer.commits == [{TP: 2}, {TP: 3}, {TP: 4}]


class PositionedConsumer(RecordingConsumer):
    """A consumer with assigned partitions, their positions and high watermarks (None: not fetched yet)."""

    def __init__(self, positions: dict[TopicPartition, int], highwaters: dict[TopicPartition, int | None]) -> None:
        super().__init__()
        self.positions = positions
        self.highwaters = highwaters

    def assignment(self) -> set[TopicPartition]:
        return set(self.positions)

    def highwater(self, tp: TopicPartition) -> int | None:
        assert tp in self.positions, "Partition is not assigned"  # as aiokafka asserts
        return self.highwaters[tp]

    async def position(self, tp: TopicPartition) -> int:
        assert tp in self.positions, "Partition is not assigned"
        return self.positions[tp]


class RevokedWhileAsking(PositionedConsumer):
    """A rebalance lands while the committer awaits a position: the other partitions are revoked."""

    async def position(self, tp: TopicPartition) -> int:
        position = await super().position(tp)
        for other in [p for p in self.positions if p != tp]:
            del self.positions[other]
        return position


async def test_an_empty_poll_commits_up_to_the_position_past_records_never_returned():
    """After an empty poll each fetched partition is committed at the consumer's position, past what the client
    skipped (a transaction's commit marker after offset 9); once, and never a partition not fetched yet nor
    an empty one (position 0: nothing skipped, and a commit would make it look consumed)."""
    other, unfetched, empty = TopicPartition("commands", 1), TopicPartition("commands", 2), TopicPartition("commands", 3)
    consumer = PositionedConsumer({TP: 11, other: 5, unfetched: 0, empty: 0},
                                  {TP: 11, other: 5, unfetched: None, empty: 0})
    committer = OffsetCommitter(consumer, Progress(60), interval_s=60)
    await batches(committer, 9)  # offsets up to 9 durable; 10 is a commit marker
    assert consumer.commits == [{TP: 10}]
    await committer.commit_idle()
    assert consumer.commits == [{TP: 10}, {TP: 11, other: 5}]
    await committer.commit_idle()  # nothing new: nothing sent
    assert len(consumer.commits) == 2
    consumer.positions[TP] = 14
    committer.done(TP, 12)  # pending 13, the position 14 is further
    await committer.commit_idle()
    assert consumer.commits[-1] == {TP: 14}


async def test_a_partition_revoked_while_the_idle_commit_asks_positions_is_skipped_not_fatal():
    """A rebalance during the idle commit's position lookups: the revoked partitions are skipped (the client
    asserts on them; the worker died of it on Apache Kafka) and the one still assigned is committed."""
    first, second = TopicPartition("commands", 0), TopicPartition("commands", 1)
    consumer = RevokedWhileAsking({first: 4, second: 7}, {first: 4, second: 7})
    committer = OffsetCommitter(consumer, Progress(60), interval_s=60)
    await committer.commit_idle()
    assert len(consumer.commits) == 1 and set(consumer.commits[0]) <= {first, second}
    assert len(consumer.commits[0]) == 1
