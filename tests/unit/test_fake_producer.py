"""The producer contract against the fake producer the relay's unit tests use (no services)."""

from __future__ import annotations

import pytest

from tests.helpers.fakes import FakeProducer
from tests.helpers.producer_contract import ProducerContract, Record


class FakeBackend:
    """The fake producer; what it acknowledged, per topic, is the reader's view (offsets count from 0)."""

    topics = ("events", "dlq")

    def __init__(self) -> None:
        self.producer = FakeProducer()

    async def records(self, topic: str, count: int) -> list[Record]:
        sent = [s for s in self.producer.sent if s.topic == topic]
        return [Record(offset, s.key, s.value, s.headers) for offset, s in enumerate(sent)]


class TestFakeProducer(ProducerContract):
    """FakeProducer keeps the producer contract."""

    @pytest.fixture
    async def backend(self):
        backend = FakeBackend()
        await backend.producer.start()
        yield backend
        await backend.producer.stop()
