"""The message key (DESIGN §5.3, §6.1): the one place that says which Kafka key a message gets.

The key decides the partition, and the partition decides the order a worker applies commands in and the
outbox shard of their events: every producer of commands (`orderstatus send`, the gateway, the bench,
the tests) and the worker's shard mapping take it from here, so no two of them can disagree about where
an order's messages go. Everything about one order is keyed by its order id in decimal; what concerns no
single order (an override batch, its summary) by its command id."""

from __future__ import annotations

from collections.abc import Mapping

CHANGE_ORDER_STATUS = "ChangeOrderStatus"  # the command about one order (DESIGN §5.3)


def order_key(order_id: int | str) -> bytes:
    """The key of an order's commands and events: its id in decimal ASCII (1029 -> b"1029")."""
    return str(order_id).encode()


def message_key(order_id: int | str | None, command_id: str | None) -> bytes:
    """The key of a message about one order (`order_id` given) or about none (keyed by `command_id`)."""
    return order_key(order_id) if order_id is not None else str(command_id).encode()


def command_key(command: Mapping) -> bytes:
    """DESIGN §5.3 for a command as a JSON object: the order id for a `ChangeOrderStatus`, the command id for
    anything else (a batch). A command that names no order is keyed by its command id; read as it is, never
    validated (`send --no-validate` sends what it was given)."""
    order_id = command.get("order_id") if command.get("type") == CHANGE_ORDER_STATUS else None
    return message_key(order_id, command.get("command_id"))
