"""The consumer contract suite (`tests/helpers/consumer_contract.py`) against the in-memory `FakeConsumer`: the
fake the consume loop's unit tests run over behaves as the aiokafka implementation does on the broker."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from service.domain.commands import SourceMessage
from service.runtime.consumer import Partition
from tests.helpers.consumer_contract import ConsumerContract
from tests.helpers.fakes import FakeConsumer


class FakeGroup:
    """One topic of two partitions and the committed offsets of one group, shared by its FakeConsumers."""

    topic = "events"

    def __init__(self) -> None:
        self.logs: dict[Partition, list[SourceMessage]] = {Partition(self.topic, 0): [], Partition(self.topic, 1): []}
        self.committed: dict[Partition, int] = {}

    async def produce(self, partition: int, values: Sequence[bytes], key: bytes | None = None,
                      headers: Sequence[tuple[str, bytes]] = ()) -> None:
        log = self.logs[Partition(self.topic, partition)]
        for value in values:
            log.append(SourceMessage(self.topic, partition, len(log), key, value, tuple(headers)))

    def consumer(self) -> FakeConsumer:
        consumer = FakeConsumer()
        consumer.logs, consumer.committed = self.logs, self.committed
        return consumer


class TestFakeConsumer(ConsumerContract):
    @pytest.fixture
    def backend(self) -> FakeGroup:
        return FakeGroup()
