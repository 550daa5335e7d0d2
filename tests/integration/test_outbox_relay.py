"""The outbox relay (DESIGN §7.4) on the real Postgres with the fake producer: a row is marked published
only once the broker acknowledged it, so an outage mid-batch leaves the rest for the next attempt."""

from __future__ import annotations

import pytest
from aiokafka.errors import KafkaTimeoutError

from service.adapters.postgres import outbox
from service.adapters.postgres.connection import create_pool
from service.adapters.postgres.outbox_relay_store import PostgresOutboxStore
from service.contract.events import WireMessage
from service.worker.relay import OutboxRelay
from tests.helpers.fakes import FakeProducer, Sent

MESSAGES = [WireMessage("events", f"{n}".encode(), f"event {n}".encode(), [("ce_id", f"{n}".encode())])
            for n in range(1, 6)]


async def unpublished(pool) -> list[bytes]:
    """Rows after their shard's cursor, neither published out of line nor parked."""
    rows = await pool.fetch("SELECT payload FROM outbox o JOIN outbox_cursor c USING (shard) "
                            "WHERE o.id > c.published_through AND published_at IS NULL AND parked_at IS NULL "
                            "ORDER BY id")
    return [bytes(r["payload"]) for r in rows]


class TestOutboxRelay:
    async def test_an_outage_mid_batch_leaves_the_unacknowledged_rows_for_the_next_drain(self, database_url):
        """Only acknowledged rows are marked; after the outage every other row goes out once, in id order."""
        pool = await create_pool(database_url)
        try:
            async with pool.acquire() as conn:
                await outbox.insert(conn, MESSAGES)
            producer = FakeProducer()
            relay = OutboxRelay(PostgresOutboxStore(pool), producer, batch_size=2)
            producer.fail(KafkaTimeoutError(), after=1)
            with pytest.raises(KafkaTimeoutError):
                await relay.publish_pending()
            assert await unpublished(pool) == [m.value for m in MESSAGES[1:]]

            producer.recover()
            await relay.drain()
            assert await unpublished(pool) == []
            assert producer.sent == [Sent(m.topic, m.key, m.value, tuple(m.headers)) for m in MESSAGES]
            await relay.drain()
            assert len(producer.sent) == len(MESSAGES)  # nothing left to publish
        finally:
            await pool.close()
