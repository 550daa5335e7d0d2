"""Reading a topic's records by position or by time, without a consumer group (the DLQ tools).

Nothing is committed and no group is joined, so reading never disturbs a running consumer. The end
of a partition is taken when reading starts (what arrives later is not waited for); the fetch's high
watermark raises it when the broker's ListOffsets answer falls short (the embedded broker reports the
last *batch*'s base offset + 1)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from service.adapters.kafka.clients import consumer_of, learn_topic
from service.adapters.kafka.config import KafkaSettings
from service.contract.headers import Headers

# polls that bring nothing before a partition that should have more records is given up on
_EMPTY_POLLS = 10
_POLL_MS = 300


@dataclass(frozen=True)
class Record:
    """One record as stored: where, when (ms since the epoch), key, value and headers."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: Headers


class TopicRecords:
    def __init__(self, consumer: AIOKafkaConsumer, topic: str) -> None:
        self._consumer = consumer
        self.topic = topic

    def partitions(self) -> list[int]:
        return sorted(self._consumer.partitions_for_topic(self.topic) or ())

    def _tp(self, partition: int) -> TopicPartition:
        return TopicPartition(self.topic, partition)

    async def bounds(self, partitions: list[int]) -> dict[int, tuple[int, int]]:
        """Per partition: (first offset still stored, end offset)."""
        tps = [self._tp(p) for p in partitions]
        first = await self._consumer.beginning_offsets(tps)
        end = await self._consumer.end_offsets(tps)
        return {tp.partition: (first[tp], end[tp]) for tp in tps}

    async def first_at_or_after(self, partitions: list[int], stamp_ms: int) -> dict[int, int | None]:
        """The first offset whose timestamp is at or after `stamp_ms`; None when there is none (the
        embedded broker answers a time past its last record with offset 0 and timestamp -1: checked)."""
        tps = [self._tp(p) for p in partitions]
        found = await self._consumer.offsets_for_times({tp: stamp_ms for tp in tps})
        return {tp.partition: (found[tp].offset if found.get(tp) is not None and found[tp].timestamp >= stamp_ms
                               else None) for tp in tps}

    async def read(self, partition: int, start: int, end: int) -> AsyncIterator[Record]:
        """The records of one partition from `start` up to `end` (exclusive), in offset order."""
        if start >= end:
            return
        tp = self._tp(partition)
        self._consumer.assign([tp])
        self._consumer.seek(tp, start)
        stretched = False
        empty = 0
        while await self._consumer.position(tp) < end and empty < _EMPTY_POLLS:
            batch = await self._consumer.getmany(tp, timeout_ms=_POLL_MS)
            messages = batch.get(tp, [])
            if not stretched and messages:  # a ListOffsets end short of the true one (see the module doc)
                end = max(end, self._consumer.highwater(tp) or 0)
                stretched = True
            empty = 0 if messages else empty + 1
            for m in messages:
                if m.offset >= end:
                    return
                yield Record(self.topic, partition, m.offset, m.timestamp, m.key, m.value, tuple(m.headers or ()))

    async def get(self, partition: int, offset: int) -> Record | None:
        """The record at one position; None when there is none (never written, or gone with retention)."""
        if partition not in self.partitions():
            return None
        (first, end), = (await self.bounds([partition])).values()
        if not first <= offset:
            return None
        async for record in self.read(partition, offset, max(end, offset + 1)):
            return record if record.offset == offset else None
        return None


@contextlib.asynccontextmanager
async def topic_records(settings: KafkaSettings, topic: str) -> AsyncIterator[TopicRecords]:
    """A reader of `topic` that belongs to no group, closed afterwards (even when its start failed)."""
    consumer = consumer_of(
        settings, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest",
        fetch_max_bytes=settings.kafka_fetch_max_bytes,
        max_partition_fetch_bytes=settings.kafka_max_partition_fetch_bytes,
    )
    try:
        await consumer.start()
        # let the group-less coordinator's background task begin: cancelled before its first step (a
        # stop() right after start(), when the caller fails at once) it raises CancelledError out of stop()
        await asyncio.sleep(0)
        await learn_topic(consumer, topic)
        yield TopicRecords(consumer, topic)
    finally:
        await consumer.stop()
