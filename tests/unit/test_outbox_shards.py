"""Outbox shards and the relay's cursor (issue 12), as pure logic: which shard a message is written to,
and what a relay round settles (how far the cursor moves, what is marked published or parked)."""

from __future__ import annotations

from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError
from aiokafka.partitioner import DefaultPartitioner

from service.adapters.errors import KafkaRefused
from service.adapters.kafka.publishing import SENT, partition_of
from service.contract.events import Topics
from service.domain.outbox import Parking, StoredMessage
from service.worker.batch import process_batch
from service.worker.config import BatchConfig
from service.worker.relay_round import settle_round
from tests.helpers.commands import change, override, source_messages
from tests.helpers.fakes import FakeDatabase, FakeUnitOfWork

TOPICS = Topics("events", "dlq")
PARTITIONS = 6


def order_shard(order_id: int) -> int:
    return partition_of(str(order_id).encode(), PARTITIONS)


class TestShardOfAMessage:
    def test_partition_of_is_the_default_partitioners_choice(self):
        """partition_of picks what aiokafka's (and the Java client's) default partitioner picks for a key."""
        for key in (b"1", b"1029", b"3001", b"order-42", "ü".encode()):
            for partitions in (1, 3, 6, 12):
                assert partition_of(key, partitions) == DefaultPartitioner()(key, list(range(partitions)), [])

    async def test_an_orders_events_go_to_its_orders_shard_wherever_the_command_came_from(self):
        """An override read from partition 5 writes each item's event to the shard of that item's order, the
        one its ChangeOrderStatus commands go to; so one relay publishes all of an order's events, in order."""
        db = FakeDatabase.seeded()
        orders = (1033, 3001)
        [bulk] = source_messages([override([(1033, "OnHold"), (3001, "QuoteAccepted")])], partition=5)
        [single] = source_messages([change(1033, "Confirmed", role="manager")], partition=order_shard(1033),
                                   first_offset=1)
        for source in (bulk, single):
            await process_batch([source], lambda: FakeUnitOfWork(db), BatchConfig(TOPICS, 50, order_shard=order_shard))
        events = [m for m in db.outbox if m.order_id is not None]
        assert {m.order_id for m in events} == set(orders)
        assert all(m.shard == order_shard(m.order_id) for m in events)
        assert {order_shard(o) for o in orders} != {5}  # else the test would prove nothing
        [summary] = [m for m in db.outbox if m.order_id is None]
        assert summary.shard == 5  # no order: the command's own partition

    async def test_without_the_partition_count_messages_go_to_the_commands_partition(self):
        """Before the consumer knows the topic's partitions, every message goes to the command's partition."""
        db = FakeDatabase.seeded()
        sources = source_messages([change(1033, "OnHold", role="manager")], partition=4)
        await process_batch(sources, lambda: FakeUnitOfWork(db), BatchConfig(TOPICS, 50))
        assert [m.shard for m in db.outbox] == [4]


def row(row_id: int, key: bytes | None = b"7", topic: str = "events") -> StoredMessage:
    return StoredMessage(row_id, topic, key, b"{}", [])


class TestARelayRound:
    def test_all_acknowledged_moves_the_cursor_to_the_last_row(self):
        """Every row sent: the cursor moves past all of them and nothing is marked row by row."""
        rows = [row(1), row(2, b"8"), row(5)]
        settled = settle_round(rows, {}, {1: SENT, 2: SENT, 5: SENT})
        assert (settled.through, settled.published, settled.published_beyond, settled.parked) == (5, [1, 2, 5], [], [])

    def test_an_outage_stops_the_cursor_before_the_first_unsent_row(self):
        """Rows acknowledged after the first unsent one are marked one by one, never sent again."""
        rows = [row(1), row(2, b"8"), row(3, b"9"), row(4, b"10")]
        settled = settle_round(rows, {}, {1: SENT, 2: KafkaTimeoutError(), 3: SENT, 4: None})
        assert settled.through == 1
        assert settled.published_beyond == [3]
        assert settled.parked == []

    def test_nothing_settled_leaves_the_cursor_where_it_was(self):
        """An outage on the first row: no cursor move at all."""
        settled = settle_round([row(1), row(2)], {}, {1: KafkaTimeoutError(), 2: None})
        assert (settled.through, settled.published, settled.parked) == (None, [], [])

    def test_a_refused_row_is_parked_and_its_keys_later_rows_are_held_behind_it(self):
        """The refusal parks the row; a later row of the same key (not sent) is parked behind it; other keys
        flow, and the cursor passes all of them."""
        refusal = MessageSizeTooLargeError("too big")
        rows = [row(1), row(2, b"8"), row(3), row(4, None)]
        settled = settle_round(rows, {}, {1: refusal, 2: SENT, 3: None, 4: SENT})
        assert settled.through == 4
        assert settled.published == [2, 4]
        assert settled.parked == [Parking(1, "MessageSizeTooLargeError: [Error 10] MessageSizeTooLargeError: too big"),
                                  Parking(3, "held behind parked row 1", 1)]

    def test_a_topic_the_user_may_not_write_parks_nothing_and_stops_the_cursor(self):
        """A refused ACL is no row's fault: its rows are left unsent, like an outage's, for after the grant."""
        refused = KafkaRefused("Kafka refused user 'worker' access to topic events: not authorised")
        rows = [row(1), row(2, b"8"), row(3, b"9")]
        settled = settle_round(rows, {}, {1: SENT, 2: refused, 3: SENT})
        assert (settled.through, settled.published_beyond, settled.parked) == (1, [3], [])

    def test_rows_of_a_key_parked_in_an_earlier_round_are_held_behind_that_row(self):
        """A row whose topic and key have a parked row is parked behind it without being sent."""
        rows = [row(10), row(11, b"8")]
        settled = settle_round(rows, {10: 3}, {11: SENT})
        assert settled.through == 11
        assert settled.parked == [Parking(10, "held behind parked row 3", 3)]
