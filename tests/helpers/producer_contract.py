"""One contract suite of the producer port (`service.worker.ports.Producer`), run against every implementation as
eventsourcing runs one abstract test case per backend: `tests/unit/test_fake_producer.py` runs it against
`tests/helpers/fakes.FakeProducer`, `tests/integration/test_kafka_producer.py` against the aiokafka producer the
worker makes (`adapters/kafka/clients.make_producer`) on the tests' broker. A subclass provides a `backend`
fixture: a started producer, two topics of one partition each, and a reader of what those topics hold. The suite
checks the topics through that reader, not only the acknowledgements, so a fake that acknowledges and keeps
nothing fails it.

What the relay and the redrive rely on: an acknowledged message is on its topic with its key, value and headers;
messages sent to one partition keep their order, and each acknowledgement names the offset the message got."""

from __future__ import annotations

import asyncio
from typing import NamedTuple, Protocol

from service.worker.ports import Producer
from tests.helpers.contract_suite import ContractSuite


class Record(NamedTuple):
    """One record as a reader of the topic sees it."""

    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]


class Backend(Protocol):
    """What a concrete suite provides: a started producer, its topics, and a reader of them."""

    producer: Producer
    topics: tuple[str, str]  # two topics, one partition each, empty

    async def records(self, topic: str, count: int) -> list[Record]:
        """The topic's records, in offset order, once it holds at least `count`."""


class ProducerContract(ContractSuite):
    """The behaviour every producer keeps."""

    async def test_an_acknowledged_message_is_on_its_topic(self, backend):
        """The acknowledgement names the topic, partition 0 and offset 0; the reader finds key, value and headers."""
        topic = backend.topics[0]
        ack = await (await backend.producer.send(topic, value=b'{"n": 1}', key=b"11", headers=[("trace", b"t-1")]))
        assert (ack.topic, ack.partition, ack.offset) == (topic, 0, 0)
        assert await backend.records(topic, 1) == [Record(0, b"11", b'{"n": 1}', (("trace", b"t-1"),))]

    async def test_messages_keep_their_order_and_get_consecutive_offsets(self, backend):
        """Five messages sent before any is awaited are acknowledged at offsets 0..4 and read in the order sent."""
        topic = backend.topics[0]
        pending = [await backend.producer.send(topic, value=f"m{i}".encode(), key=b"k") for i in range(5)]
        acks = await asyncio.gather(*pending)
        assert [ack.offset for ack in acks] == [0, 1, 2, 3, 4]
        assert [(r.offset, r.value) for r in await backend.records(topic, 5)] == [
            (0, b"m0"), (1, b"m1"), (2, b"m2"), (3, b"m3"), (4, b"m4")]

    async def test_send_and_wait_returns_the_acknowledgement(self, backend):
        """send_and_wait's acknowledgement names the offset the reader finds the message at."""
        topic = backend.topics[0]
        await backend.producer.send_and_wait(topic, value=b"first", key=b"a")
        ack = await backend.producer.send_and_wait(topic, value=b"second", key=b"b")
        assert (ack.topic, ack.offset) == (topic, 1)
        assert [(r.offset, r.key, r.value) for r in await backend.records(topic, 2)] == [
            (0, b"a", b"first"), (1, b"b", b"second")]

    async def test_a_tombstone_keeps_its_key(self, backend):
        """A message without a value arrives as a null value with its key."""
        topic = backend.topics[0]
        await backend.producer.send_and_wait(topic, value=None, key=b"gone")
        assert await backend.records(topic, 1) == [Record(0, b"gone", None, ())]

    async def test_headers_arrive_as_sent(self, backend):
        """Headers keep their order, their repeats and their bytes."""
        topic = backend.topics[0]
        headers = [("b", b"2"), ("a", b"\x00\xff"), ("b", b"3")]
        await backend.producer.send_and_wait(topic, value=b"v", key=b"k", headers=headers)
        [record] = await backend.records(topic, 1)
        assert record.headers == tuple(headers)

    async def test_topics_are_separate(self, backend):
        """Each topic numbers its own offsets from 0 and holds only what was sent to it."""
        first, second = backend.topics
        await backend.producer.send_and_wait(first, value=b"one", key=b"k")
        await backend.producer.send_and_wait(first, value=b"two", key=b"k")
        ack = await backend.producer.send_and_wait(second, value=b"other", key=b"k")
        assert (ack.topic, ack.offset) == (second, 0)
        assert [r.value for r in await backend.records(second, 1)] == [b"other"]
        assert [r.value for r in await backend.records(first, 2)] == [b"one", b"two"]
