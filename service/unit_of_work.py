"""The Postgres unit of work: one transaction carries a whole batch of commands (DESIGN §7.1, §9).

Within it: claim the command ids (the processed-command record; a duplicate is a unique-key
conflict), lock and read the orders, then write every change, its history note, the outbox rows
and the outcomes. Nothing is visible until commit; a failure rolls all of it back."""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg

from service.adapters import orders_store
from service.adapters.rules_store import RulesCache
from service.domain.model import OrderFacts, RuleSet
from service.handlers import Outcome
from service.outbox import insert_outbox


class RulesNotLoaded(RuntimeError):
    """No rule set in the database yet: the worker waits instead of rejecting everything."""


class PostgresUnitOfWork:
    def __init__(self, pool: asyncpg.Pool, rules_cache: RulesCache) -> None:
        self.pool = pool
        self.rules_cache = rules_cache
        self.conn: asyncpg.Connection | None = None
        self._tx = None
        self._outcomes: list[Outcome] = []

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
            if self._tx is not None and exc_type is not None:
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
        """Insert processed-command records; returns the ids that are new (the rest are duplicates).

        A concurrent transaction claiming the same id waits on the unique key and then sees it taken,
        so two workers can never both apply one command."""
        unique: dict[str, tuple[str, str]] = {}
        for command_id, command_type, source in keys:
            unique.setdefault(command_id, (command_type, source))
        if not unique:
            return set()
        ids = sorted(unique)  # one global order of key locks between concurrent batches
        rows = await self.conn.fetch(
            """
            INSERT INTO processed_commands (command_id, command_type, outcome, source)
            SELECT id, t, 'pending', s FROM unnest($1::text[], $2::text[], $3::text[]) AS u(id, t, s)
            ON CONFLICT (command_id) DO NOTHING
            RETURNING command_id
            """,
            ids,
            [unique[i][0] for i in ids],
            [unique[i][1] for i in ids],
        )
        return {r["command_id"] for r in rows}

    async def lock_orders(self, order_ids: Iterable[int]) -> dict[int, OrderFacts]:
        return await orders_store.lock_orders(self.conn, order_ids)

    def add(self, outcome: Outcome) -> None:
        self._outcomes.append(outcome)

    async def commit(self) -> None:
        conn = self.conn
        await orders_store.apply_changes(conn, [applied for o in self._outcomes for applied in o.changes])
        await insert_outbox(conn, [m for o in self._outcomes for m in o.messages])
        if self._outcomes:
            await conn.execute(
                """
                UPDATE processed_commands p SET outcome = u.outcome
                  FROM unnest($1::text[], $2::text[]) AS u(command_id, outcome)
                 WHERE p.command_id = u.command_id
                """,
                [o.command_id for o in self._outcomes],
                [o.outcome for o in self._outcomes],
            )
        await self._tx.commit()
        self._tx = None
