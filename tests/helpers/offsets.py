"""Consumer-group offsets and partition ends, read with plain aiokafka clients that never join a group
(the admin API for group offsets does not work on the embedded broker; joining would rebalance the
group under test)."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, TopicPartition

from service.adapters.kafka.clients import learn_topic
from service.runtime.settings import Settings
from tests.helpers.waiting import wait_until


def _consumer(settings: Settings, group: str | None) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers, group_id=group,
                            enable_auto_commit=False)


async def committed_offsets(settings: Settings, group: str, topic: str) -> dict[int, int | None]:
    """The group's committed offset for every partition of the topic (None where it committed none)."""
    consumer = _consumer(settings, group)
    await consumer.start()
    try:
        await learn_topic(consumer, topic)
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        assert tps, f"the broker knows no partitions of {topic}"
        consumer.assign(tps)
        return {tp.partition: await consumer.committed(tp) for tp in tps}
    finally:
        await consumer.stop()


async def commit_offsets(settings: Settings, group: str, topic: str, offsets: dict[int, int]) -> None:
    """Commit offsets for a group without joining it, as a stopped consumer would have left them."""
    consumer = _consumer(settings, group)
    await consumer.start()
    try:
        tps = {TopicPartition(topic, p): o for p, o in offsets.items()}
        consumer.assign(list(tps))
        await consumer.commit(tps)
    finally:
        await consumer.stop()


async def wait_committed(settings: Settings, group: str, topic: str, expected: dict[int, int | None],
                         timeout: float = 40.0) -> None:
    """Until the group's committed offsets are exactly `expected`."""
    found: list = []

    async def probe():
        found[:] = [await committed_offsets(settings, group, topic)]
        return found[0] == expected

    try:
        await wait_until(probe, timeout, f"committed offsets {expected}", interval=0.2)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last seen {found}") from None


async def end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    """The end offsets the broker reports (ListOffsets). The embedded broker reports the last *batch*'s base
    offset + 1, short of the true end when that batch holds several records; see `log_ends`."""
    consumer = _consumer(settings, None)
    await consumer.start()
    try:
        await learn_topic(consumer, topic)
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        return {tp.partition: offset for tp, offset in (await consumer.end_offsets(tps)).items()}
    finally:
        await consumer.stop()


async def log_ends(settings: Settings, topic: str, timeout: float = 20.0) -> dict[int, int]:
    """The true end of each partition (last offset + 1), found by reading it: the reported end is at most the
    true one and inside the last batch, so once the position reaches it the whole last batch has been read."""
    reported = await end_offsets(settings, topic)
    consumer = _consumer(settings, None)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(reported)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        positions: dict[int, int] = {}

        async def read_to_the_end():
            positions.update({tp.partition: await consumer.position(tp) for tp in tps})
            if all(positions[p] >= reported[p] for p in reported):
                return True
            await consumer.getmany(timeout_ms=200)
            return False

        try:
            await wait_until(read_to_the_end, timeout, f"{topic} read to {reported}", interval=0)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; read to {positions}") from None
        return dict(positions)
    finally:
        await consumer.stop()
