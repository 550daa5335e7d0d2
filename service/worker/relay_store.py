"""The relay's port to the outbox: `OutboxStore`. `PostgresOutboxStore`
(`service.adapters.postgres.outbox_relay_store`) is the real one; `tests/helpers/fake_outbox.py` the
in-memory one; `tests/helpers/outbox_contract.py` is the one suite both pass."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from service.domain.outbox import OutboxStats, Parking, StoredMessage


class LockedRound(Protocol):
    """One round's rows, under the relay locks of their shards until the round's block exits."""

    rows: list[StoredMessage]  # each locked shard's rows after its cursor, shard by shard, in id order
    held: dict[int, int]  # row id -> the parked row of its line it has to wait behind
    more: set[int]  # shards whose part was cut by the round's row or byte limit: more may wait

    async def settle(self, through: dict[int, int], published: Sequence[int], parked: Sequence[Parking]) -> None:
        """Record the round, kept only when the block exits without an error: each shard's cursor moves to
        its `through` (every row up to it is settled), `published` rows beyond a cursor are marked one by one,
        `parked` rows are parked, each with why."""


class OutboxStore(Protocol):
    def lock_round(self, limit: int, shards: Sequence[int], max_bytes: int,
                   ) -> AbstractAsyncContextManager[LockedRound | None]:
        """The rows after the cursors of those of `shards` no other relay holds (None: others hold every
        one), at most a share of `limit` rows and of `max_bytes` of payload per shard (at least one row)."""

    async def shards_waiting(self, older_than_s: float) -> list[int]:
        """Shards whose first row still to publish is older than `older_than_s`, in order."""

    async def stats(self) -> OutboxStats:
        """Backlog, age of the oldest row still to publish, parked rows."""
