"""The producer contract against the aiokafka producer the worker makes, on the tests' broker."""

from __future__ import annotations

import pytest

from service.adapters.kafka.admin import create_topics
from service.adapters.kafka.clients import make_producer
from testkit.topics import TopicReader
from tests.helpers.producer_contract import ProducerContract, Record
from tests.helpers.waiting import wait_until


class KafkaBackend:
    """A started producer as `make_producer` configures it; a group-less reader of each one-partition topic."""

    def __init__(self, settings) -> None:
        self.settings = settings
        self.topics = (settings.events_topic, settings.dlq_topic)
        self.producer = make_producer(settings)

    async def records(self, topic: str, count: int) -> list[Record]:
        async with TopicReader(self.settings.kafka_bootstrap_servers, topic, partitions=1) as reader:
            async def enough() -> bool:
                await reader.poll()
                return len(reader.records) >= count

            await wait_until(enough, 30, f"{count} records on {topic}", interval=0)
            return [Record(r.offset, r.key, r.value, tuple((name, bytes(value)) for name, value in r.headers))
                    for r in sorted(reader.records, key=lambda r: r.offset)]


class TestKafkaProducer(ProducerContract):
    """The aiokafka producer keeps the producer contract on a real broker."""

    @pytest.fixture
    async def backend(self, settings):
        await create_topics(settings, 1, 1)
        backend = KafkaBackend(settings)
        await backend.producer.start()
        try:
            yield backend
        finally:
            await backend.producer.stop()
