"""Reading a topic from outside any consumer group: every record from the beginning, accumulated.

Records are counted by reading them, not from end offsets: the embedded broker's ListOffsets answers
a high watermark that counts record batches, not records (5,006 records in 12 batches: 12)."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord


class TopicReader:
    """Every record of `topic` from the beginning, without a consumer group (nothing is committed).

    With `partitions` the reader assigns partitions 0..partitions-1 itself and seeks to their beginning;
    without, the client finds the topic's partitions. With `keep=False` a poll's records are only returned
    (a caller that keeps its own view of them does not hold them twice)."""

    def __init__(self, bootstrap_servers: str, topic: str, partitions: int | None = None, *, keep: bool = True,
                 **consumer) -> None:
        self.topic = topic
        self.keep = keep
        self.tps = [TopicPartition(topic, p) for p in range(partitions)] if partitions else None
        self._options = dict(bootstrap_servers=bootstrap_servers, group_id=None, enable_auto_commit=False,
                             auto_offset_reset="earliest", **consumer)
        self.consumer: AIOKafkaConsumer | None = None  # made in start(), inside the running event loop
        self.records: list[ConsumerRecord] = []

    async def start(self) -> TopicReader:
        self.consumer = AIOKafkaConsumer(*(() if self.tps else (self.topic,)), **self._options)
        await self.consumer.start()
        if self.tps:
            self.consumer.assign(self.tps)
            await self.consumer.seek_to_beginning(*self.tps)
        return self

    async def stop(self) -> None:
        await self.consumer.stop()

    async def __aenter__(self) -> TopicReader:
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    async def poll(self, timeout_ms: int = 200, max_records: int | None = None) -> list[ConsumerRecord]:
        """One fetch: the records that arrived, also appended to `records` when kept."""
        batch = await self.consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
        new = [m for messages in batch.values() for m in messages]
        if self.keep:
            self.records.extend(new)
        return new
