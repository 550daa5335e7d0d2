"""What the worker's batch is configured with, built once by the app (`worker/app.py`) and passed whole."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from service.contract.commands import InputLimits
from service.contract.events import Topics
from service.domain.model import Actor

# who acts: (the message's headers, the command's actor, (its command id, its value)) -> the actor to act as,
# or why it may not (a token bound to a command counts only on that command id and value)
ActorCheck = Callable[[Sequence[tuple[str, bytes | None]], Actor, tuple[str, "bytes | None"]], "Actor | str"]

# an order id -> the commands partition its commands go to (its key's), None while unknown
OrderShard = Callable[[int], "int | None"]


def trust_the_command(headers, actor: Actor, command=None) -> Actor:
    """`ORDERSTATUS_ACTOR_AUTH=off`: the first-wave behaviour, the command's actor as it says."""
    return actor


def no_order_shard(order_id: int) -> None:
    return None


@dataclass(frozen=True)
class BatchConfig:
    """The batch's settings and policies: where outcomes go (`topics`), how large an override may be, what input
    is accepted, how often a message that times out on its own is tried, who may act, and each order's shard
    (`dataclasses.replace` it per batch when the partition count is read anew)."""

    topics: Topics
    max_batch_items: int
    limits: InputLimits = InputLimits()
    timeout_tries: int = 3
    check_actor: ActorCheck = trust_the_command
    order_shard: OrderShard = no_order_shard
