"""Following a topic from outside any consumer group: every record from the beginning (the kit's
TopicReader, testkit.topics, which the tests read with too), kept with its partition, offset and Kafka
timestamp, counted as it arrives, by a background task."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from testkit.topics import TopicReader


@dataclass(frozen=True)
class Record:
    partition: int
    offset: int
    timestamp_ms: int
    timestamp_type: int  # 0 CreateTime, 1 LogAppendTime
    key: bytes | None
    value: bytes | None


class TopicFollower:
    def __init__(self, bootstrap_servers: str, topic: str, partitions: int, pace_s: float = 0.25) -> None:
        self.reader = TopicReader(bootstrap_servers, topic, partitions, keep=False, fetch_max_wait_ms=50)
        self.records: list[Record] = []
        self.pace_s = pace_s
        self.last_record_at = time.monotonic()
        self._task: asyncio.Task | None = None

    async def start(self) -> "TopicFollower":
        await self.reader.start()
        self._task = asyncio.create_task(self._follow())
        return self

    async def _follow(self) -> None:
        while True:
            batch = await self.reader.poll(timeout_ms=100, max_records=10_000)
            self.records.extend(Record(m.partition, m.offset, m.timestamp, m.timestamp_type, m.key, m.value)
                                for m in batch)
            if batch:
                self.last_record_at = time.monotonic()
            # paced: the embedded broker's fetch costs CPU in proportion to what the partition holds, and a
            # follower fetching as fast as events arrive took CPU from the worker it measures; the figures
            # come from the records' timestamps, so reading them later changes none of them
            await asyncio.sleep(self.pace_s)

    @property
    def count(self) -> int:
        if self._task is not None and self._task.done() and not self._task.cancelled():
            self._task.result()  # a dead follower fails the scenario
        return len(self.records)

    async def settle(self, quiet_s: float = 1.0, timeout: float = 30.0) -> None:
        """Until nothing new has arrived for `quiet_s` (late duplicates, a drain at shutdown)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() - self.last_record_at < quiet_s and time.monotonic() < deadline:
            _ = self.count
            await asyncio.sleep(0.1)

    def ordered(self) -> list[Record]:
        return sorted(self.records, key=lambda r: (r.partition, r.offset))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.reader.stop()
