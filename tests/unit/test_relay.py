"""The outbox relay (`service.worker.relay`) on the in-memory outbox and the fake producer: no Postgres,
no broker. What its rounds publish, park and leave, what it raises, and what it counts."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import replace

import pytest
from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError

from service.adapters.errors import KafkaRefused
from service.contract.events import WireMessage
from service.runtime.health import Progress
from service.runtime.metrics import Metrics
from service.runtime.retry import OutageRetry
from service.worker.relay import OutboxRelay, Round
from tests.helpers.fake_outbox import FakeOutbox
from tests.helpers.fakes import FakeProducer
from tests.helpers.waiting import wait_until


def keyed(value: str, key: str | None = "1", shard: int = 0) -> WireMessage:
    return replace(WireMessage("events", None if key is None else key.encode(), value.encode()), shard=shard)


class RefusingProducer(FakeProducer):
    """Refuses at send every value containing `refused` with `error` (by default: too large, for good)."""

    def __init__(self, refused: bytes = b"big", error: BaseException | None = None) -> None:
        super().__init__()
        self.refused = refused
        self.error = error

    async def send(self, topic, value=None, key=None, headers=None, **options):
        if self.refused in value:
            raise self.error if self.error is not None else MessageSizeTooLargeError("over the limit")
        return await super().send(topic, value=value, key=key, headers=headers, **options)


def sent(producer) -> list[str]:
    return [s.value.decode() for s in producer.sent]


def states(store: FakeOutbox) -> dict[str, str]:
    """value -> published | parked | parked behind N | waiting."""
    def state(row_id, row) -> str:
        held = store.state_of(row_id) == "parked" and row.held_behind is not None
        return f"parked behind {row.held_behind}" if held else store.state_of(row_id)

    return {row.message.value.decode(): state(row_id, row) for row_id, row in store.rows.items()}


@pytest.fixture
def store() -> FakeOutbox:
    ticks = itertools.count()
    return FakeOutbox(clock=lambda: float(next(ticks)))


class TestDraining:
    async def test_every_owned_shard_is_published_in_id_order(self, store):
        """Rows of two owned shards all go out, each shard's in id order; rows of a shard not owned stay."""
        store.insert([keyed("a", shard=0), keyed("b", shard=1), keyed("c", shard=0), keyed("x", shard=2)])
        producer = FakeProducer()
        await OutboxRelay(store, producer, owned_shards=lambda: {0, 1}).drain()
        assert sent(producer) == ["a", "c", "b"]
        assert states(store) == {"a": "published", "b": "published", "c": "published", "x": "waiting"}

    async def test_a_round_cut_by_its_row_limit_is_followed_by_the_next(self, store):
        """Five rows, two a round: drain goes on with the cut shard until it is empty."""
        store.insert([keyed(str(n)) for n in range(5)])
        producer = FakeProducer()
        relay = OutboxRelay(store, producer, batch_size=2)
        assert await relay.publish_pending([0]) == Round(2, {0})
        await relay.drain([0])
        assert sent(producer) == ["0", "1", "2", "3", "4"]

    async def test_a_shard_another_relay_holds_is_left_to_it(self, store):
        """While another round holds shard 0, drain publishes shard 1 and leaves shard 0's rows."""
        store.insert([keyed("a", shard=0), keyed("b", shard=1)])
        producer = FakeProducer()
        relay = OutboxRelay(store, producer, owned_shards=lambda: {0, 1})
        async with store.lock_round(1000, [0], 1000):
            await relay.drain()
            assert await relay.publish_pending([0]) is None
        assert sent(producer) == ["b"]

    async def test_the_sweep_publishes_a_shard_nobody_owns_once_its_rows_waited(self, store):
        """A shard not owned is published by the sweep, once its first row is older than the sweep interval."""
        now = [0.0]
        store.clock = lambda: now[0]
        store.insert([keyed("a", shard=7)])
        producer = FakeProducer()
        relay = OutboxRelay(store, producer, owned_shards=lambda: {0}, sweep_every_s=5)
        await relay.sweep()
        assert sent(producer) == []  # not waited long enough
        now[0] = 6.0
        await relay.sweep()
        assert sent(producer) == ["a"]

    async def test_a_notified_shard_is_published_without_waiting_for_the_poll(self, store):
        """run: a commit's notify wakes the relay for the shards it names; another owned shard's row waits
        for the next look at every shard (the stats read right after that round still count it)."""
        producer = FakeProducer()
        relay = OutboxRelay(store, producer, owned_shards=lambda: {0, 1}, stats_every_s=0)
        stop = asyncio.Event()
        running = asyncio.create_task(relay.run(stop, OutageRetry(0.1, 1.0, Metrics("worker"), Progress(60)),
                                                poll_interval=60))
        try:
            store.insert([keyed("a", shard=1)])
            relay.notify({1})  # the first wake-up looks at every owned shard
            await wait_until(lambda: relay.stats is not None and relay.stats.backlog == 0, 5, "the first look")
            store.insert([keyed("b", shard=0), keyed("c", shard=1)])
            relay.notify({0})
            await wait_until(lambda: sent(producer) == ["a", "b"] and relay.stats.backlog == 1, 5,
                             "shard 0 published, shard 1 left for the next look")
            assert states(store)["c"] == "waiting"
        finally:
            stop.set()
            relay.wakeup.set()
            await asyncio.wait_for(running, 5)


class TestRefusals:
    async def test_a_refused_row_is_parked_and_the_later_rows_of_its_line_are_parked_behind_it(self, store):
        """The broker refuses one row for good: it is parked, the later row of its key is parked behind it
        unsent, another key's row goes out, and the cursor passes all of them."""
        store.insert([keyed("big", "1"), keyed("a", "2"), keyed("later", "1"), keyed("no key", None)])
        producer = RefusingProducer()
        metrics = Metrics("worker")
        relay = OutboxRelay(store, producer, metrics=metrics)
        assert await relay.publish_pending([0]) == Round(4, set())
        assert sent(producer) == ["a", "no key"]
        assert states(store) == {"big": "parked", "a": "published", "later": "parked behind 1", "no key": "published"}
        assert store.rows[1].reason == "MessageSizeTooLargeError: [Error 10] MessageSizeTooLargeError: over the limit"
        registry = metrics.registry
        assert registry.get_sample_value("orderstatus_outbox_published_total", {"service": "worker"}) == 2
        assert registry.get_sample_value("orderstatus_outbox_errors_total",
                                         {"service": "worker", "error": "MessageSizeTooLargeError"}) == 1

    async def test_rows_written_after_a_parked_row_of_their_line_wait_behind_it_unsent(self, store):
        """A later round parks the new rows of a parked row's line behind it without sending them."""
        store.insert([keyed("big")])
        producer = RefusingProducer()
        relay = OutboxRelay(store, producer)
        await relay.drain([0])
        store.insert([keyed("next"), keyed("other", "2")])
        await relay.drain([0])
        assert sent(producer) == ["other"]
        assert states(store)["next"] == "parked behind 1"
        assert (await relay.refresh_stats()).parked == 1

    async def test_an_outage_stops_the_cursor_before_the_first_unsent_row_and_is_raised(self, store):
        """Acknowledged rows are kept, the rest wait; after recovery nothing acknowledged goes out twice."""
        store.insert([keyed(v, k) for v, k in (("a", "1"), ("b", "2"), ("c", "3"))])
        producer = FakeProducer()
        producer.fail(KafkaTimeoutError(), after=1)
        relay = OutboxRelay(store, producer)
        with pytest.raises(KafkaTimeoutError):
            await relay.publish_pending([0])
        assert states(store) == {"a": "published", "b": "waiting", "c": "waiting"}
        producer.recover()
        await relay.drain([0])
        assert sent(producer) == ["a", "b", "c"]

    async def test_a_topic_the_user_may_not_write_parks_nothing_and_stops_the_relay(self, store):
        """A refused ACL is raised (the worker stops with it); its rows wait for the grant."""
        store.insert([keyed("a"), keyed("denied", "2")])
        refusal = KafkaRefused("Kafka refused user 'worker' access to topic events: not authorised")
        relay = OutboxRelay(store, RefusingProducer(b"denied", refusal))
        with pytest.raises(KafkaRefused):
            await relay.drain([0])
        assert states(store) == {"a": "published", "denied": "waiting"}
