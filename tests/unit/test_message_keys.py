"""The one message key (service/contract/keys.py, DESIGN §5.3 and §6.1), pinned: an order's messages never move."""

from __future__ import annotations

import pytest

from service.adapters.kafka.publishing import partition_of
from service.contract.keys import command_key, message_key, order_key

COMMAND_ID = "6f1c0000-0000-4000-8000-000000000001"


class TestTheKeyOfAnOrder:
    @pytest.mark.parametrize(("order_id", "key"), [
        (1, b"1"), (1029, b"1029"), (10_000, b"10000"), (9_223_372_036_854_775_807, b"9223372036854775807"),
        ("1029", b"1029")])
    def test_an_order_is_keyed_by_its_id_in_decimal(self, order_id, key):
        """order_key is the order id's decimal ASCII, whether given as an int or as its text."""
        assert order_key(order_id) == key

    # partitions of the default partitioner (murmur2) for 3, 6 and 12 partitions, as measured when pinned:
    # a change of the key function that moves an order's commands to another partition (and its events to
    # another outbox shard) fails here
    @pytest.mark.parametrize(("order_id", "partitions"), [
        (1, (0, 3, 3)), (2, (2, 2, 8)), (3, (2, 5, 11)), (1029, (1, 4, 10)), (1030, (0, 0, 6)),
        (10_000, (0, 0, 0)), (10_001, (2, 5, 11)), (9_223_372_036_854_775_807, (0, 3, 9))])
    def test_an_order_stays_on_its_partition(self, order_id, partitions):
        """The partition (and so the worker and the outbox shard) of known orders is pinned."""
        assert tuple(partition_of(order_key(order_id), n) for n in (3, 6, 12)) == partitions


class TestTheKeyOfACommand:
    def test_a_change_is_keyed_by_its_order(self):
        """DESIGN §5.3: a ChangeOrderStatus goes under its order id."""
        command = {"type": "ChangeOrderStatus", "command_id": COMMAND_ID, "order_id": 1029, "status": 21}
        assert command_key(command) == b"1029"

    def test_a_batch_is_keyed_by_its_command_id(self):
        """DESIGN §5.3: an OverrideOrderStatuses goes under its command id, even if it names an order id."""
        command = {"type": "OverrideOrderStatuses", "command_id": COMMAND_ID, "order_id": 7, "items": []}
        assert command_key(command) == COMMAND_ID.encode()

    def test_a_change_without_an_order_is_keyed_by_its_command_id(self):
        """An invalid change sent unvalidated (no order id) goes under its command id, never under b"None"."""
        assert command_key({"type": "ChangeOrderStatus", "command_id": COMMAND_ID}) == COMMAND_ID.encode()

    def test_the_change_and_its_events_share_a_key(self):
        """A change's command and its per-order events (DESIGN §6.1) land on the same key."""
        change = {"type": "ChangeOrderStatus", "command_id": COMMAND_ID, "order_id": 1029}
        assert command_key(change) == message_key(1029, COMMAND_ID) == order_key(1029)

    def test_what_concerns_no_order_is_keyed_by_its_command(self):
        """A batch summary (no order id) is keyed by its command id."""
        assert message_key(None, COMMAND_ID) == COMMAND_ID.encode()
