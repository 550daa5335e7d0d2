"""The Postgres unit of work: one transaction carries a whole batch of commands (DESIGN §7.1, §9).

Within it: claim the command ids (a read of which are recorded already: the duplicates), lock and read
the orders; at commit write each claimed command's processed record once, with its outcome (an id a
concurrent transaction recorded first raises ClaimLost: redo the batch), then every change, its history
note and the outbox rows. Nothing is visible until commit; a failure rolls all of it back."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from service.adapters.errors import ClaimLost, PositionGap, RulesNotLoaded
from service.adapters.postgres import orders, outbox, positions, processed
from service.adapters.postgres.rules import RulesCache
from service.contract.events import WireMessage
from service.domain.events import StatusChanged
from service.domain.model import OrderFacts, RuleSet


class PostgresUnitOfWork:
    def __init__(self, pool, rules_cache: RulesCache, group: str | None = None) -> None:
        self.pool = pool
        self.rules_cache = rules_cache
        self.group = group  # the consumer group whose positions `advance` moves (issue 24)
        self._positions: dict[tuple[str, int], int] = {}
        self._firsts: dict[tuple[str, int], int] = {}
        self.conn = None
        self._tx = None
        self._changes: list[StatusChanged] = []
        self._messages: list[WireMessage] = []
        self._outcomes: dict[str, str] = {}
        self._claimed: dict[str, tuple[str, str]] = {}  # command id -> (command type, source), written at commit

    async def __aenter__(self) -> "PostgresUnitOfWork":
        self.conn = await self.pool.acquire()
        try:
            self._tx = self.conn.transaction()
            await self._tx.start()
        except BaseException:
            await self.pool.release(self.conn)
            raise
        return self

    async def __aexit__(self, exc_type, exc, tb) -> None:
        try:
            if self._tx is not None:  # not committed: an error, or a unit of work left without commit
                try:
                    await self._tx.rollback()
                except Exception:
                    pass  # the connection is gone; the server rolled back already
        finally:
            await self.pool.release(self.conn)

    async def rules(self) -> RuleSet:
        rules = await self.rules_cache.get(self.conn)
        if rules is None:
            raise RulesNotLoaded("no rules loaded; run `orderstatus rules load FILE`")
        return rules

    async def claim(self, keys: Iterable[tuple[str, str, str]]) -> set[str]:
        """Claim (command_id, command_type, source) records; returns the ids that are new. The records are
        written at commit, with the outcomes `add` gives them ('pending' without one)."""
        unique: dict[str, tuple[str, str]] = {}
        for command_id, command_type, source in keys:
            if command_id not in self._claimed:
                unique.setdefault(command_id, (command_type, source))
        new = set(unique) - await processed.recorded(self.conn, list(unique))
        self._claimed.update((command_id, unique[command_id]) for command_id in new)
        return new

    async def take_over_invalid(self, keys: Iterable[tuple[str, str, str]]) -> set[str]:
        """Reclaim records of commands recorded as invalid, for their redrive; returns the ids taken over."""
        return await processed.take_over_invalid(self.conn, keys)

    async def lock_orders(self, order_ids: Iterable[int]) -> dict[int, OrderFacts]:
        return await orders.lock_orders(self.conn, order_ids)

    def add(self, command_id: str, outcome: str, changes: Sequence[StatusChanged],
            messages: Sequence[WireMessage]) -> None:
        self._outcomes[command_id] = outcome
        self._changes.extend(changes)
        self._messages.extend(messages)

    def advance(self, next_offsets: Mapping[tuple[str, int], int],
                first_offsets: Mapping[tuple[str, int], int] | None = None) -> None:
        """The consumer's position moves to these next offsets (topic, partition -> offset) in this commit:
        the database's record of its progress is the work it holds (issue 24); a stored position behind
        `first_offsets` makes `commit` raise PositionGap."""
        for where, offset in next_offsets.items():
            self._positions[where] = max(offset, self._positions.get(where, offset))
        for where, offset in (first_offsets or {}).items():
            self._firsts[where] = min(offset, self._firsts.get(where, offset))

    async def commit(self) -> None:
        records = [(command_id, kind, source, self._outcomes.get(command_id, "pending"))
                   for command_id, (kind, source) in self._claimed.items()]
        inserted = await processed.insert(self.conn, records)  # first: a lost claim costs no further writes
        if len(inserted) < len(records):
            raise ClaimLost(sorted(set(self._claimed) - inserted)[:10])
        await processed.record_outcomes(
            self.conn, [(i, outcome) for i, outcome in self._outcomes.items() if i not in self._claimed])
        await orders.apply_changes(self.conn, self._changes)
        await outbox.insert(self.conn, self._messages)
        if self.group is not None:
            gaps = await positions.advance(self.conn, self.group, self._positions, self._firsts)
            if gaps:
                raise PositionGap(gaps)  # rolled back by __aexit__
        await self._tx.commit()
        self._tx = None
