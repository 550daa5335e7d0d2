"""Publishing stored outbox rows (`service.adapters.kafka.publishing.publish_all`, the relay's sender),
against the fake producer: in order, and an unacknowledged message is an error the relay sees."""

from __future__ import annotations

import pytest
from aiokafka.errors import KafkaTimeoutError

from service.adapters.kafka.publishing import publish_all
from service.adapters.postgres.outbox import StoredMessage
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
