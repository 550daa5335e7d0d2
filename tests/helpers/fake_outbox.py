"""An in-memory outbox: the relay's `OutboxStore` port (`service.worker.relay_store`) without Postgres.

It keeps what the tables keep — rows with their shard, a cursor per shard, published/parked marks, the
row a held row waits behind — and the same semantics: one round per shard at a time (a shard another
round holds is left out), a round's settle kept only when its block exits without an error, each shard's
part cut at its share of the row and byte limits (at least one row). Which rows wait behind a parked
row is the domain's rule (`service.domain.outbox.held_back`), the rule the Postgres query is checked
against. `tests/helpers/outbox_contract.py` runs one suite against this and `PostgresOutboxStore`."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

from service.contract.events import WireMessage
from service.domain.outbox import OutboxStats, Parking, StoredMessage, held_back


@dataclass
class FakeRow:
    """A row of `outbox`."""

    message: StoredMessage
    created_at: float  # the store's clock
    published: bool = False
    parked: bool = False
    reason: str | None = None
    held_behind: int | None = None


@dataclass
class FakeRound:
    """A locked round: what `settle` records is kept when the round's block exits without an error."""

    rows: list[StoredMessage]
    held: dict[int, int]
    more: set[int] = field(default_factory=set)
    _settled: list[tuple[dict[int, int], list[int], list[Parking]]] = field(default_factory=list)

    async def settle(self, through: dict[int, int], published: Sequence[int], parked: Sequence[Parking]) -> None:
        self._settled.append((dict(through), list(published), list(parked)))


class FakeOutbox:
    """The outbox's committed state, and the relay's port over it."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.rows: dict[int, FakeRow] = {}
        self.cursors: dict[int, int] = {}  # shard -> every row up to this id is published or parked
        self.clock = clock
        self._next_id = 1
        self._locked: set[int] = set()  # shards a round holds

    def insert(self, messages: Sequence[WireMessage]) -> None:
        """What the unit of work's writer commits: the rows in order, ids ascending; a new shard's cursor
        starts before every row."""
        for m in messages:
            source_time = (None if m.source_timestamp_ms is None
                           else datetime.fromtimestamp(m.source_timestamp_ms / 1000, timezone.utc))
            stored = StoredMessage(self._next_id, m.topic, m.key, m.value, list(m.headers), source_time, m.shard)
            self.rows[self._next_id] = FakeRow(stored, self.clock())
            self.cursors.setdefault(m.shard, 0)
            self._next_id += 1

    def _waiting(self, shard: int) -> list[FakeRow]:
        """The shard's rows after its cursor still to publish, in id order."""
        cursor = self.cursors.get(shard)
        if cursor is None:
            return []
        return [r for row_id, r in sorted(self.rows.items())
                if r.message.shard == shard and row_id > cursor and not r.published and not r.parked]

    def state_of(self, row_id: int) -> str:
        """parked, published (marked, or passed by its shard's cursor) or waiting."""
        row = self.rows[row_id]
        if row.parked and not row.published:
            return "parked"
        return "published" if row.published or row_id <= self.cursors[row.message.shard] else "waiting"

    def _parked_rows(self) -> list[StoredMessage]:
        """The rows parked for their own refusal (not those held behind one), still unpublished."""
        return [r.message for r in self.rows.values() if r.parked and not r.published and r.held_behind is None]

    @contextlib.asynccontextmanager
    async def lock_round(self, limit: int, shards: Sequence[int], max_bytes: int,
                         ) -> AsyncIterator[FakeRound | None]:
        locked = sorted(set(shards) - self._locked)
        if not locked:
            yield None
            return
        self._locked.update(locked)
        try:
            row_share, byte_share = max(limit // len(locked), 1), max(max_bytes // len(locked), 1)
            rows: list[StoredMessage] = []
            more: set[int] = set()
            for shard in locked:
                taken = [r.message for r in self._waiting(shard)][:row_share]
                part: list[StoredMessage] = []
                size = 0
                for message in taken:
                    if size >= byte_share:
                        break
                    part.append(message)
                    size += len(message.value)
                if part and (len(taken) == row_share or size >= byte_share):
                    more.add(shard)
                rows += part
            batch = FakeRound(rows, held_back(rows, self._parked_rows()), more)
            yield batch
            for through, published, parked in batch._settled:
                self._apply(through, published, parked)
        finally:
            self._locked.difference_update(locked)

    def _apply(self, through: dict[int, int], published: list[int], parked: list[Parking]) -> None:
        for shard, row_id in through.items():
            if shard in self.cursors:
                self.cursors[shard] = row_id
        for row_id in published:
            self.rows[row_id].published = True
        for parking in parked:
            row = self.rows[parking.id]
            row.parked, row.reason, row.held_behind = True, parking.reason, parking.held_behind

    async def shards_waiting(self, older_than_s: float) -> list[int]:
        now = self.clock()
        return sorted(shard for shard in self.cursors
                      if (waiting := self._waiting(shard)) and waiting[0].created_at < now - older_than_s)

    async def stats(self) -> OutboxStats:
        waiting = [r for shard in self.cursors for r in self._waiting(shard)]
        oldest = min((r.created_at for r in waiting), default=None)
        return OutboxStats(len(waiting), None if oldest is None else self.clock() - oldest, len(self._parked_rows()))
