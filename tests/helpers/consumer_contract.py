"""One contract suite of the consumer port (`service.runtime.consumer.Consumer`), run against the in-memory
`FakeConsumer` (`tests/unit/test_fake_consumer.py`) and against `KafkaConsumer` on the broker
(`tests/integration/test_kafka_consumer.py`), so the fake the consume loop's unit tests run over cannot drift
from the aiokafka implementation unnoticed.

A subclass provides a `backend` fixture: a topic of two partitions, a way to produce to it, and new members of
one consumer group. The suite polls as the consume loop does (a broker assigns partitions inside a poll)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Protocol

from service.domain.commands import SourceMessage
from service.runtime.consumer import Consumer, Partition
from tests.helpers.contract_suite import ContractSuite


class ConsumerBackend(Protocol):
    topic: str  # two partitions, empty at first

    async def produce(self, partition: int, values: Sequence[bytes], key: bytes | None = None,
                      headers: Sequence[tuple[str, bytes]] = ()) -> None:
        """Append the values to the partition, in order, and return once they can be read."""

    def consumer(self) -> Consumer:
        """A new member of the suite's one consumer group, not started."""


class Joined:
    """A started consumer subscribed to the topic, and what its callbacks and polls saw."""

    def __init__(self, consumer: Consumer) -> None:
        self.consumer = consumer
        self.assigned: list[set[Partition]] = []
        self.revoked: list[set[Partition]] = []
        self.records: list[SourceMessage] = []

    async def on_assigned(self, partitions: set[Partition]) -> None:
        self.assigned.append(set(partitions))

    async def on_revoked(self, partitions: set[Partition]) -> None:
        self.revoked.append(set(partitions))

    async def poll_until(self, done: Callable[["Joined"], bool], timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not done(self):
            assert time.monotonic() < deadline, f"not there after {timeout_s}s; polled {self.offsets()}"
            self.records.extend(await self.consumer.poll(0.2, 100))

    async def poll_quietly(self, polls: int = 5) -> list[SourceMessage]:
        """A few polls more, for what must not come: returned for the caller to check."""
        found: list[SourceMessage] = []
        for _ in range(polls):
            found.extend(await self.consumer.poll(0.2, 100))
        self.records.extend(found)
        return found

    def offsets(self, partition: int | None = None) -> list:
        return [(m.partition, m.offset) if partition is None else m.offset for m in self.records
                if partition is None or m.partition == partition]


async def join(backend: ConsumerBackend) -> Joined:
    joined = Joined(backend.consumer())
    joined.consumer.subscribe([backend.topic], on_assigned=joined.on_assigned, on_revoked=joined.on_revoked)
    await joined.consumer.start()
    return joined


def both(topic: str) -> set[Partition]:
    return {Partition(topic, 0), Partition(topic, 1)}


class ConsumerContract(ContractSuite):
    """What the consume loop and the commit policy rely on. Subclasses provide `backend`."""

    async def test_polls_bring_every_message_once_in_partition_order_as_source_messages(self, backend):
        """Three messages on one partition and two on the other come once each, in order per partition, with
        their topic, partition, offset, key, value and headers; both partitions were assigned through the
        callback."""
        await backend.produce(0, [b"a", b"b", b"c"], key=b"k", headers=[("h", b"1")])
        await backend.produce(1, [b"d", b"e"])
        joined = await join(backend)
        try:
            await joined.poll_until(lambda j: len(j.records) >= 5)
            assert await joined.poll_quietly() == []
            assert joined.offsets(0) == [0, 1, 2] and joined.offsets(1) == [0, 1]
            first = next(m for m in joined.records if m.partition == 0)
            assert (first.topic, first.key, first.value, first.headers) == (backend.topic, b"k", b"a", (("h", b"1"),))
            assert [m.value for m in joined.records if m.partition == 1] == [b"d", b"e"]
            assert set().union(*joined.assigned) == both(backend.topic) == joined.consumer.assignment()
            assert joined.consumer.partitions_for(backend.topic) == {0, 1}
        finally:
            await joined.consumer.stop()

    async def test_position_and_highwater_are_past_the_last_message_read(self, backend):
        """Once everything is read, each partition's position and high watermark are its last offset + 1."""
        await backend.produce(0, [b"a", b"b", b"c"])
        await backend.produce(1, [b"d"])
        joined = await join(backend)
        try:
            await joined.poll_until(lambda j: len(j.records) >= 4)
            zero, one = sorted(both(backend.topic))
            assert (await joined.consumer.position(zero), await joined.consumer.position(one)) == (3, 1)
            assert (joined.consumer.highwater(zero), joined.consumer.highwater(one)) == (3, 1)
        finally:
            await joined.consumer.stop()

    async def test_the_next_member_of_the_group_starts_at_the_committed_offsets(self, backend):
        """A commit of (partition 0: 2, partition 1: 0) after reading everything is the group's committed offsets, and
        a new member reads partition 0 from offset 2 and partition 1 from the start."""
        await backend.produce(0, [b"a", b"b", b"c"])
        await backend.produce(1, [b"d", b"e"])
        first = await join(backend)
        try:
            await first.poll_until(lambda j: len(j.records) >= 5)
            zero, one = sorted(both(backend.topic))
            await first.consumer.commit({zero: 2, one: 0})
            assert (await first.consumer.committed_offset(zero), await first.consumer.committed_offset(one)) == (2, 0)
        finally:
            await first.consumer.stop()
        second = await join(backend)
        try:
            await second.poll_until(lambda j: len(j.records) >= 3)
            assert await second.poll_quietly() == []
            assert second.offsets(0) == [2] and second.offsets(1) == [0, 1]
        finally:
            await second.consumer.stop()

    async def test_a_paused_partition_brings_nothing_until_resumed(self, backend):
        """Partition 0 paused: new messages come from partition 1 only; resumed, partition 0's come too."""
        await backend.produce(0, [b"a"])
        await backend.produce(1, [b"b"])
        joined = await join(backend)
        try:
            await joined.poll_until(lambda j: len(j.records) >= 2)
            zero, _ = sorted(both(backend.topic))
            joined.consumer.pause([zero])
            assert joined.consumer.paused() == {zero}
            await backend.produce(0, [b"c"])
            await backend.produce(1, [b"d"])
            await joined.poll_until(lambda j: len(j.records) >= 3)
            assert await joined.poll_quietly() == [] and joined.offsets(1) == [0, 1] and joined.offsets(0) == [0]
            joined.consumer.resume([zero])
            assert joined.consumer.paused() == set()
            await joined.poll_until(lambda j: len(j.records) >= 4)
            assert joined.offsets(0) == [0, 1]
        finally:
            await joined.consumer.stop()

    async def test_seek_reads_a_partition_again_from_the_offset(self, backend):
        """After reading partition 0 to its end, a seek to offset 1 brings offsets 1 and 2 once more."""
        await backend.produce(0, [b"a", b"b", b"c"])
        joined = await join(backend)
        try:
            await joined.poll_until(lambda j: len(j.records) >= 3)
            zero, _ = sorted(both(backend.topic))
            joined.consumer.seek({zero: 1})
            await joined.poll_until(lambda j: len(j.records) >= 5)
            assert joined.offsets(0) == [0, 1, 2, 1, 2]
        finally:
            await joined.consumer.stop()
