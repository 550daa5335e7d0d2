"""Publishing scales out (issue 12): the outbox is sharded by the commands partition, each shard has its
own relay lock, so relays of different shards publish at once, and one shard keeps its id order; the
relay's per-shard cursor never passes a row still to commit, and a retried parked row keeps its order."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from aiokafka.errors import MessageSizeTooLargeError

from service.adapters.postgres import outbox, outbox_ops, outbox_relay_store
from service.adapters.postgres.connection import create_pool
from service.adapters.postgres.outbox_relay_store import PostgresOutboxStore
from service.contract.events import WireMessage
from service.runtime.health import Progress
from service.runtime.metrics import Metrics
from service.runtime.retry import OutageRetry
from service.worker.relay import OutboxRelay
from tests.helpers.fakes import FakeProducer
from tests.helpers.lock_waits import wait_for_lock_wait
from tests.helpers.waiting import wait_until


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
        relay = OutboxRelay(PostgresOutboxStore(pool), producer, owned_shards=lambda: {0, 1})
        async with outbox_relay_store.unpublished(pool, 1000, [0]) as held:  # another worker's relay, inside its round
            assert held is not None
            await relay.drain()
            assert [s.value for s in producer.sent] == [b"event 1", b"event 3", b"event 5"]
        await relay.drain()
        assert [s.value for s in producer.sent][3:] == [b"event 0", b"event 2", b"event 4"]  # in id order
    finally:
        await pool.close()


async def test_one_round_publishes_every_shard_it_can_lock_and_moves_each_cursor(database_url):
    """A round over shards 0, 1 and 2 while shard 1 is held elsewhere: shards 0 and 2 go out, each in id
    order, their cursors move to their own last rows; shard 1's rows and cursor stay for its holder."""
    pool = await create_pool(database_url)
    try:
        async with pool.acquire() as conn:
            await outbox.insert(conn, [message(n, n % 3) for n in range(9)])
        producer = FakeProducer()
        relay = OutboxRelay(PostgresOutboxStore(pool), producer)
        async with outbox_relay_store.unpublished(pool, 1000, [1]) as held:
            assert held is not None
            done = await relay.publish_pending([0, 1, 2])
        assert (done.settled, done.more) == (6, set())
        sent = [s.value for s in producer.sent]
        assert [v for v in sent if int(v.split()[1]) % 3 == 0] == [b"event 0", b"event 3", b"event 6"]
        assert [v for v in sent if int(v.split()[1]) % 3 == 2] == [b"event 2", b"event 5", b"event 8"]
        cursors = dict(await pool.fetch("SELECT shard, published_through FROM outbox_cursor"))
        last = dict(await pool.fetch("SELECT shard, max(id) FROM outbox GROUP BY shard"))
        assert (cursors[0], cursors[2]) == (last[0], last[2])
        assert cursors[1] < last[1] and (await outbox_ops.stats(pool)).backlog == 3
    finally:
        await pool.close()


async def test_a_round_shares_its_row_limit_among_its_shards_and_says_which_have_more(database_url):
    """A round of 4 rows over two shards takes 2 of each, the first in id order, and names both as having
    more; the drain takes the rest, and a shard's rows never go out of order."""
    pool = await create_pool(database_url)
    try:
        async with pool.acquire() as conn:
            await outbox.insert(conn, [message(n, n % 2) for n in range(10)])
        producer = FakeProducer()
        relay = OutboxRelay(PostgresOutboxStore(pool), producer, batch_size=4, owned_shards=lambda: {0, 1})
        done = await relay.publish_pending([0, 1])
        assert (done.settled, done.more) == (4, {0, 1})
        assert sorted(s.value for s in producer.sent) == [b"event 0", b"event 1", b"event 2", b"event 3"]
        await relay.drain()
        sent = [int(s.value.split()[1]) for s in producer.sent]
        assert sorted(sent) == list(range(10))
        assert [n for n in sent if n % 2 == 0] == [0, 2, 4, 6, 8] and [n for n in sent if n % 2] == [1, 3, 5, 7, 9]
    finally:
        await pool.close()


async def test_a_notified_shard_is_published_at_once_and_the_others_at_the_next_look(database_url):
    """After a commit the relay publishes the shards it was told about without waiting for its poll; rows
    another process left in its other shards wait for the next look at every owned shard."""
    pool = await create_pool(database_url)
    try:
        producer = FakeProducer()
        relay = OutboxRelay(PostgresOutboxStore(pool), producer, owned_shards=lambda: {0, 1})
        stop = asyncio.Event()
        retry = OutageRetry(0.1, 1.0, Metrics("worker"), Progress(60))
        running = asyncio.create_task(relay.run(stop, retry, poll_interval=3.0))
        try:
            await insert(pool, [message(0, 0)])
            await wait_until(lambda: len(producer.sent) == 1, 10, "the first look at every shard")
            await insert(pool, [message(1, 0), message(2, 1)])
            relay.notify({0})
            await wait_until(lambda: len(producer.sent) == 2, 1.0, "the notified shard")
            assert producer.sent[1].value == b"event 1"
            await wait_until(lambda: len(producer.sent) == 3, 10, "the next look at every shard")
        finally:
            stop.set()
            relay.wakeup.set()
            await asyncio.wait_for(running, 10)
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
        relay = OutboxRelay(PostgresOutboxStore(pool), producer, owned_shards=lambda: {0}, sweep_every_s=5)
        await relay.drain()
        assert producer.sent == []  # not ours
        await relay.sweep()
        assert [s.value for s in producer.sent] == [b"event 1"]
    finally:
        await pool.close()


class RefusingProducer(FakeProducer):
    """Refuses for good (too large) every value containing b"big" while `refusing` is set."""

    refusing = True

    async def send(self, topic, value=None, key=None, headers=None, **options):
        if self.refusing and b"big" in value:
            raise MessageSizeTooLargeError("over the limit")
        return await super().send(topic, value=value, key=key, headers=headers, **options)


def keyed(value: str, key: str, shard: int = 0) -> WireMessage:
    return replace(WireMessage("events", key.encode(), value.encode()), shard=shard)


async def insert(pool, messages: list[WireMessage]) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await outbox.insert(conn, messages)


async def test_a_shards_writers_commit_in_id_order_so_the_cursor_never_passes_a_row_to_come(database_url):
    """While one transaction holds rows of shard 0 uncommitted, another writer of shard 0 waits for it (a
    writer of shard 1 does not), and the relay publishes neither: the cursor cannot pass the first one's
    rows before they commit; afterwards both go out in id order."""
    pool = await create_pool(database_url)
    try:
        producer = FakeProducer()
        relay = OutboxRelay(PostgresOutboxStore(pool), producer, owned_shards=lambda: {0, 1})
        async with pool.acquire() as first:
            transaction = first.transaction()
            await transaction.start()
            await outbox.insert(first, [message(1, 0)])
            second = asyncio.create_task(insert(pool, [message(2, 0)]))
            await insert(pool, [message(3, 1)])
            await wait_for_lock_wait(pool, what="the second writer of shard 0 waiting on its write lock")
            assert not second.done()
            await relay.drain()
            assert [s.value for s in producer.sent] == [b"event 3"]
            await transaction.commit()
            await asyncio.wait_for(second, 10)
        await relay.drain()
        assert [s.value for s in producer.sent] == [b"event 3", b"event 1", b"event 2"]
        assert (await outbox_ops.stats(pool)).backlog == 0
    finally:
        await pool.close()


async def test_a_retried_row_goes_out_before_the_later_rows_of_its_key(database_url):
    """A refused row is parked and its key's next row held behind it while other keys flow; `unpark` moves
    it, the held row and a row the relay had not reached yet to the end of the shard, in their order."""
    pool = await create_pool(database_url)
    try:
        producer = RefusingProducer()
        relay = OutboxRelay(PostgresOutboxStore(pool), producer, owned_shards=lambda: {0})
        await insert(pool, [keyed("a1 big", "A"), keyed("b1", "B"), keyed("a2", "A")])
        await relay.drain()
        assert [s.value for s in producer.sent] == [b"b1"]
        [parked] = await outbox_ops.parked(pool)
        assert (parked.reason.startswith("MessageSizeTooLargeError"), parked.held_back) == (True, 1)
        assert (await outbox_ops.stats(pool)).parked == 1
        await insert(pool, [keyed("a3", "A"), keyed("b2", "B")])  # not reached by the relay yet

        producer.refusing = False  # the fix
        async with pool.acquire() as conn:
            assert await outbox_ops.unpark(conn, [parked.id]) == [parked.id]
        await relay.drain()
        assert [s.value for s in producer.sent] == [b"b1", b"b2", b"a1 big", b"a2", b"a3"]
        assert await outbox_ops.parked(pool) == []
        stats = await outbox_ops.stats(pool)
        assert (stats.backlog, stats.parked) == (0, 0)
        async with pool.acquire() as conn:
            assert await outbox_ops.unpark(conn, [parked.id]) == []  # moved: no longer parked
    finally:
        await pool.close()


async def test_a_round_holds_a_bounded_number_of_bytes_and_the_drain_goes_on(database_url):
    """Rows of 300 KiB with a 1 MiB round: a round takes the rows that start below the budget (4), says
    more may wait, and the drain publishes the rest in further rounds, in id order."""
    pool = await create_pool(database_url)
    try:
        payloads = [bytes([n]) * 300 * 1024 for n in range(6)]
        await insert(pool, [replace(WireMessage("events", b"k", p), shard=0) for p in payloads])
        async with outbox_relay_store.unpublished(pool, 1000, [0], max_bytes=1024 * 1024) as batch:
            assert (len(batch.rows), batch.more) == (4, {0})
        producer = FakeProducer()
        relay = OutboxRelay(PostgresOutboxStore(pool), producer, owned_shards=lambda: {0}, round_bytes=1024 * 1024)
        await relay.drain()
        assert [s.value for s in producer.sent] == payloads
    finally:
        await pool.close()


async def test_retrying_a_held_row_retries_the_parked_row_it_waits_behind(database_url):
    """`outbox retry` of a row held behind a parked one releases that parked row and its line, in order."""
    pool = await create_pool(database_url)
    try:
        producer = RefusingProducer()
        relay = OutboxRelay(PostgresOutboxStore(pool), producer, owned_shards=lambda: {0})
        await insert(pool, [keyed("a1 big", "A"), keyed("a2", "A")])
        await relay.drain()
        [held_id] = [r["id"] for r in await pool.fetch("SELECT id FROM outbox WHERE held_behind IS NOT NULL")]
        producer.refusing = False
        async with pool.acquire() as conn:
            assert await outbox_ops.unpark(conn, [held_id]) == [held_id]
        await relay.drain()
        assert [s.value for s in producer.sent] == [b"a1 big", b"a2"]
    finally:
        await pool.close()
