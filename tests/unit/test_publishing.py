"""Publishing stored outbox rows against fake producers: `publish_all` (`orderstatus republish`'s sender)
sends in order and an unacknowledged message is an error; `publish_each` (the relay's sender) reports each
row, and a refused row holds back the later rows of its line (`service.domain.outbox`)."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError

from service.adapters.kafka.publishing import SENT, publish_all, publish_each, renew_producer_id
from service.domain.outbox import StoredMessage
from service.runtime.faults import is_outage
from tests.helpers.fakes import FakeProducer, Sent

ROWS = [StoredMessage(n, "events" if n != 3 else "dlq", f"k{n}".encode(), f"v{n}".encode(), [("h", str(n).encode())])
        for n in range(1, 6)]


class TestPublishAll:
    async def test_every_row_is_sent_in_id_order_with_key_value_and_headers(self):
        """Each stored row goes out once, on its topic, with its key, value and headers, in the given order."""
        producer = FakeProducer()
        await publish_all(producer, ROWS)
        assert producer.sent == [Sent(r.topic, r.key, r.value, tuple(r.headers)) for r in ROWS]

    async def test_a_failed_acknowledgement_is_raised(self):
        """When the broker does not acknowledge a message, publish_all raises (so the rows are not marked published)."""
        producer = FakeProducer()
        producer.fail(KafkaTimeoutError(), after=2)
        with pytest.raises(KafkaTimeoutError):
            await publish_all(producer, ROWS)
        assert [s.value for s in producer.sent] == [b"v1", b"v2"]

    async def test_after_recovery_a_retry_sends_everything(self):
        """A retry after the failure publishes every row (at least once: the acknowledged ones again)."""
        producer = FakeProducer()
        producer.fail(KafkaTimeoutError())
        with pytest.raises(KafkaTimeoutError):
            await publish_all(producer, ROWS)
        producer.recover()
        await publish_all(producer, ROWS)
        assert [s.value for s in producer.sent] == [r.value for r in ROWS]


class RefusingAtSend(FakeProducer):
    """Raises `error` from `send` for each value in `refused` (before it leaves: too large, unknown topic …)."""

    def __init__(self, refused: set[bytes], error: BaseException) -> None:
        super().__init__()
        self.refused, self.error = refused, error

    async def send(self, topic, value=None, key=None, headers=None, **options):
        if value in self.refused:
            raise self.error
        return await super().send(topic, value=value, key=key, headers=headers, **options)


def line_row(n: int, key: bytes | None, shard: int = 0, topic: str = "events") -> StoredMessage:
    return StoredMessage(n, topic, key, f"v{n}".encode(), [], shard=shard)


class TestPublishEach:
    async def test_every_acknowledged_row_is_sent_in_order(self):
        """Each row goes out once, in the given order, and is reported SENT."""
        producer = FakeProducer()
        assert await publish_each(producer, ROWS, is_outage) == [SENT] * len(ROWS)
        assert producer.sent == [Sent(r.topic, r.key, r.value, tuple(r.headers)) for r in ROWS]

    async def test_a_row_refused_at_send_holds_back_only_the_later_rows_of_its_line(self):
        """After a refusal the later rows of its shard, topic and key are not sent (None); another key, another
        topic, another shard and a row without a key still go out."""
        refusal = MessageSizeTooLargeError("too big")
        rows = [line_row(1, b"k"), line_row(2, b"j"), line_row(3, b"k"), line_row(4, b"k", topic="dlq"),
                line_row(5, b"k", shard=1), line_row(6, None), line_row(7, b"k")]
        producer = RefusingAtSend({b"v1"}, refusal)
        results = await publish_each(producer, rows, is_outage)
        assert results == [refusal, SENT, None, SENT, SENT, SENT, None]
        assert [s.value for s in producer.sent] == [b"v2", b"v4", b"v5", b"v6"]

    async def test_an_outage_at_send_leaves_every_later_row_unsent(self):
        """An outage stops the round: the rows after it are not sent (None), whatever their key."""
        outage = KafkaTimeoutError()
        rows = [line_row(1, b"a"), line_row(2, b"b"), line_row(3, b"c"), line_row(4, None)]
        producer = RefusingAtSend({b"v2"}, outage)
        assert await publish_each(producer, rows, is_outage) == [SENT, outage, None, None]
        assert [s.value for s in producer.sent] == [b"v1"]

    async def test_a_failed_acknowledgement_is_reported_for_its_row(self):
        """A row sent but not acknowledged is reported with the broker's error, the acknowledged ones SENT."""
        producer = FakeProducer()
        producer.fail(KafkaTimeoutError(), after=2)
        results = await publish_each(producer, ROWS, is_outage)
        assert results[:2] == [SENT, SENT]
        assert all(isinstance(r, KafkaTimeoutError) for r in results[2:])


class SizeLimitedBroker:
    """A producer whose broker refuses a record batch over `limit` bytes whole (MESSAGE_TOO_LARGE), as Apache
    Kafka does with a topic's `max.message.bytes`: the messages sent before the caller waits form one batch."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.sent: list[bytes] = []
        self._batch: list[tuple[asyncio.Future, bytes]] = []

    async def send(self, topic, value=None, key=None, headers=None):
        loop = asyncio.get_running_loop()
        if not self._batch:
            loop.call_soon(self._close_batch)
        future = loop.create_future()
        self._batch.append((future, value))
        return future

    def _close_batch(self) -> None:
        batch, self._batch = self._batch, []
        too_large = sum(len(value) for _, value in batch) > self.limit
        for future, value in batch:
            if too_large:
                future.set_exception(MessageSizeTooLargeError())
            else:
                self.sent.append(value)
                future.set_result(None)


def _row(n: int, key: bytes, size: int) -> StoredMessage:
    return StoredMessage(n, "events", key, bytes([96 + n]) * size, [])


class TestPublishEachWhenTheBrokerRefusesABatch:
    async def test_only_the_row_too_large_by_itself_is_refused_and_its_keys_later_row_is_left_unsent(self):
        """A batch refused for size is sent again row by row: rows of other keys are acknowledged, the big row
        alone is refused, the later row of its key is not sent (None: held behind it)."""
        producer = SizeLimitedBroker(limit=100)
        rows = [_row(1, b"big", 150), _row(2, b"a", 40), _row(3, b"b", 40), _row(4, b"big", 10)]
        results = await publish_each(producer, rows, is_outage)
        assert results[1:] == [SENT, SENT, None] and isinstance(results[0], MessageSizeTooLargeError)
        assert producer.sent == [rows[1].value, rows[2].value]

    async def test_small_rows_too_large_only_together_are_all_published_in_order(self):
        """Rows that fit one by one but not in one batch are all published, in id order."""
        producer = SizeLimitedBroker(limit=100)
        rows = [_row(n, f"k{n}".encode(), 40) for n in range(1, 5)]
        assert await publish_each(producer, rows, is_outage) == [SENT] * 4
        assert producer.sent == [r.value for r in rows]

    async def test_an_idempotent_producer_takes_a_new_producer_id_so_its_sequences_have_no_gap(self):
        """After a refused batch the idempotent producer forgets its producer id and sequences: it asks for a
        new id before it sends again (this reaches into aiokafka's transaction manager: checked here)."""
        producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:9", enable_idempotence=True)
        manager = producer._txn_manager
        manager.set_pid_and_epoch(7, 0)
        manager.increment_sequence_number(TopicPartition("events", 0), 5)
        renew_producer_id(producer)
        assert not manager.has_pid() and manager.sequence_number(TopicPartition("events", 0)) == 0
        assert not manager._pid_waiter.done()
        manager.set_pid_and_epoch(8, 0)  # what the sender does once the broker answers InitProducerId
        await manager.wait_for_pid()
        assert manager.producer_id == 8
        await producer.stop()  # never started: nothing to flush
