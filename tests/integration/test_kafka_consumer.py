"""The consumer contract suite (`tests/helpers/consumer_contract.py`) against `KafkaConsumer`, the aiokafka
implementation of the consumer port, on the test session's broker."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from service.adapters.kafka.clients import make_consumer
from service.adapters.kafka.consumer import KafkaConsumer
from service.runtime.settings import Settings
from tests.helpers.consumer_contract import ConsumerContract


class KafkaGroup:
    """A topic of two partitions of its own (the test's events topic) and the test's worker group."""

    def __init__(self, settings: Settings, producer: AIOKafkaProducer) -> None:
        self.settings = settings
        self.topic = settings.events_topic
        self.producer = producer

    async def produce(self, partition: int, values: Sequence[bytes], key: bytes | None = None,
                      headers: Sequence[tuple[str, bytes]] = ()) -> None:
        for value in values:
            await self.producer.send_and_wait(self.topic, value, key=key, partition=partition,
                                              headers=list(headers) or None)

    def consumer(self) -> KafkaConsumer:
        return KafkaConsumer(make_consumer(self.settings, self.settings.worker_group))


class TestKafkaConsumer(ConsumerContract):
    @pytest.fixture
    async def backend(self, settings: Settings):
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(settings.events_topic, 2, 1)])
        finally:
            await admin.close()
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
        await producer.start()
        try:
            yield KafkaGroup(settings, producer)
        finally:
            await producer.stop()
