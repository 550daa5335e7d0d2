"""The consume loop's consumer (`runtime.consumer.Consumer`) on aiokafka: the one place its consumer's
types, rebalance listener and errors meet the runtime.

It reads records into `SourceMessage`s at the edge (a batch the client cannot decompress arrives as
unreadable records, `unreadable.py`), turns a commit the group refuses after a rebalance into
`CommitRefused`, and stops without turning a broker outage into a crash."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError

from service.adapters.errors import CommitRefused
from service.adapters.kafka.unreadable import read_unreadable_batches
from service.domain.commands import SourceMessage

log = structlog.get_logger("orderstatus.consuming")


def _partitions(tps) -> set:
    # aiokafka's TopicPartition is a (topic, partition) named tuple: equal to the runtime's Partition
    return set(tps)


class _Listener(ConsumerRebalanceListener):
    def __init__(self, on_assigned, on_revoked) -> None:
        self.on_assigned = on_assigned
        self.on_revoked = on_revoked

    async def on_partitions_revoked(self, revoked) -> None:
        await self.on_revoked(_partitions(revoked))

    async def on_partitions_assigned(self, assigned) -> None:
        await self.on_assigned(_partitions(assigned))


class KafkaConsumer:
    """`runtime.consumer.Consumer` over an aiokafka consumer (made by `clients.make_consumer`)."""

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        read_unreadable_batches()  # a batch the client cannot decompress: records to dead-letter, not a crash
        self.client = consumer

    def subscribe(self, topics: Sequence[str], on_assigned, on_revoked) -> None:
        self.client.subscribe(list(topics), listener=_Listener(on_assigned, on_revoked))

    async def start(self) -> None:
        await self.client.start()

    async def stop(self) -> None:
        """`stop()`, but a broker outage must not turn a clean shutdown into a crash (`stop_despite_outage`).
        Offsets are already committed (or redelivered and deduped), so log and go on."""
        await stop_despite_outage(self.client)

    async def poll(self, timeout_s: float, max_records: int) -> list[SourceMessage]:
        batch = await self.client.getmany(timeout_ms=round(timeout_s * 1000), max_records=max_records)
        return [
            SourceMessage(tp.topic, tp.partition, m.offset, m.key, m.value, tuple(m.headers or ()),
                          m.timestamp if m.timestamp is not None and m.timestamp >= 0 else None,
                          getattr(m, "unreadable", None))
            for tp, messages in batch.items()
            for m in messages
        ]

    def assignment(self) -> set:
        return _partitions(self.client.assignment())

    def partitions_for(self, topic: str) -> set[int] | None:
        return self.client.partitions_for_topic(topic)

    def highwater(self, partition) -> int | None:
        return self.client.highwater(TopicPartition(*partition))

    async def position(self, partition) -> int:
        return await self.client.position(TopicPartition(*partition))

    async def committed_offset(self, partition) -> int | None:
        return await self.client.committed(TopicPartition(*partition))

    def seek(self, offsets: Mapping) -> None:
        for partition, offset in offsets.items():
            self.client.seek(TopicPartition(*partition), offset)

    async def commit(self, offsets: Mapping) -> None:
        try:
            await self.client.commit({TopicPartition(*p): o for p, o in offsets.items()})
        except (CommitFailedError, IllegalStateError) as exc:
            raise CommitRefused(str(exc)) from exc

    def pause(self, partitions: Sequence) -> None:
        self.client.pause(*(TopicPartition(*p) for p in partitions))

    def resume(self, partitions: Sequence) -> None:
        self.client.resume(*(TopicPartition(*p) for p in partitions))

    def paused(self) -> set:
        return _partitions(self.client.paused())


async def stop_despite_outage(client: AIOKafkaConsumer) -> None:
    """`client.stop()`, logged instead of raised when the broker is away: aiokafka's fetcher re-raises the
    CancelledError of a fetch task sleeping in its retry backoff when the broker is unreachable."""
    try:
        await client.stop()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise  # we ourselves are being cancelled
        log.warning("consumer did not close cleanly (broker unreachable?)")
    except Exception as exc:
        log.warning("consumer did not close cleanly (broker unreachable?)", error=repr(exc))
