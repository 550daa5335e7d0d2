"""Publishing scales out (issue 12): the outbox is sharded by the commands partition, each shard has its
own relay lock, so relays of different shards publish at once, and one shard keeps its id order."""

from __future__ import annotations

from dataclasses import replace

from service.adapters.postgres import outbox
from service.adapters.postgres.connection import create_pool
from service.contract.events import WireMessage
from service.worker.relay import OutboxRelay
from tests.helpers.fakes import FakeProducer


def message(n: int, shard: int) -> WireMessage:
    return replace(WireMessage("events", f"order-{shard}".encode(), f"event {n}".encode()), shard=shard)


async def test_a_shard_held_by_another_relay_does_not_stop_the_others(database_url):
    """While a relay holds shard 0 (mid-publish elsewhere), another relay publishes shard 1 at once;
    shard 0's rows wait for their holder — the old single global lock would have blocked both."""
    pool = await create_pool(database_url)
    try:
        async with pool.acquire() as conn:
            await outbox.insert(conn, [message(n, n % 2) for n in range(6)])
        producer = FakeProducer()
        relay = OutboxRelay(pool, producer, owned_shards=lambda: {0, 1})
        async with outbox.unpublished(pool, 1000, 0) as held:  # another worker's relay, inside its round
            assert held is not None
            await relay.drain()
            assert [s.value for s in producer.sent] == [b"event 1", b"event 3", b"event 5"]
        await relay.drain()
        assert [s.value for s in producer.sent][3:] == [b"event 0", b"event 2", b"event 4"]  # in id order
    finally:
        await pool.close()


async def test_the_sweep_publishes_a_shard_no_one_owns(database_url):
    """Rows in a shard whose partition no worker owns now are published by the periodic sweep."""
    pool = await create_pool(database_url)
    try:
        async with pool.acquire() as conn:
            await outbox.insert(conn, [message(1, 7)])
            await conn.execute("UPDATE outbox SET created_at = now() - interval '1 minute'")
        producer = FakeProducer()
        relay = OutboxRelay(pool, producer, owned_shards=lambda: {0}, sweep_every_s=5)
        await relay.drain()
        assert producer.sent == []  # not ours
        await relay.sweep()
        assert [s.value for s in producer.sent] == [b"event 1"]
    finally:
        await pool.close()
