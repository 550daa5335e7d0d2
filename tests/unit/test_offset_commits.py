"""The commit policy's cadence (runtime/offsets.py): durable offsets are committed at most once per
interval after batches, at once when asked (idle, stop), and only what is pending."""

from __future__ import annotations

import asyncio

from aiokafka import TopicPartition

from service.runtime.health import Progress
from service.runtime.offsets import OffsetCommitter

TP = TopicPartition("commands", 0)


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
    consumer = RecordingConsumer()
    committer = OffsetCommitter(consumer, Progress(60), interval_s=0.2)
    await batches(committer, 10, 20, 30, 40)
    assert consumer.commits == [{TP: 11}]  # still within the interval
    await asyncio.sleep(0.25)
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
