"""The unit-of-work contract against PostgresUnitOfWork on the real (embedded) Postgres."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from service.adapters.errors import ClaimLost
from service.adapters.postgres.connection import create_pool
from service.adapters.postgres.rules import RulesCache
from service.adapters.postgres.unit_of_work import PostgresUnitOfWork
from service.contract.events import Topics, WireMessage
from service.domain.commands import SourceMessage
from service.worker.batch import process_batch
from service.worker.config import BatchConfig
from tests.helpers.commands import change
from tests.helpers.database import seed_database
from tests.helpers.lock_waits import wait_for_lock_wait
from tests.helpers.unit_of_work_contract import (
    CONFIRMED,
    FREE,
    ON_HOLD,
    ORDERS,
    PAID,
    UnitOfWorkContract,
    applied,
    key,
    rejected,
)


class PostgresBackend:
    """A pool on the test's database, one rules cache (as a worker has), and plain SQL as the reader."""

    def __init__(self, pool, database_url: str) -> None:
        self.pool = pool
        self.database_url = database_url
        self.rules_cache = RulesCache()

    def unit_of_work(self) -> PostgresUnitOfWork:
        return PostgresUnitOfWork(self.pool, self.rules_cache, group="contract-group")

    async def seed(self, orders: list[dict]) -> None:
        await seed_database(self.database_url, orders)

    async def processed_outcomes(self) -> dict[str, str]:
        rows = await self.pool.fetch("SELECT command_id, outcome FROM processed_commands")
        return {r["command_id"]: r["outcome"] for r in rows}

    async def outbox_messages(self) -> list[WireMessage]:
        rows = await self.pool.fetch("SELECT topic, message_key, payload, headers, event_id, event_type, order_id "
                                     "FROM outbox ORDER BY id")
        return [
            WireMessage(
                topic=r["topic"], key=r["message_key"], value=bytes(r["payload"]),
                headers=[(name, bytes.fromhex(value)) for name, value in r["headers"]],
                event_id=uuid.UUID(str(r["event_id"])) if r["event_id"] is not None else None,
                event_type=r["event_type"], order_id=r["order_id"],
            )
            for r in rows
        ]

    async def order_versions(self) -> dict[int, tuple[int, int]]:
        rows = await self.pool.fetch("SELECT order_id, status_id, version FROM orders")
        return {r["order_id"]: (r["status_id"], r["version"]) for r in rows}

    async def history(self) -> list[tuple[int, int, str, uuid.UUID]]:
        rows = await self.pool.fetch("SELECT order_id, version, command_id, event_id FROM order_history "
                                     "ORDER BY order_id, version")
        return [(r["order_id"], r["version"], r["command_id"], uuid.UUID(str(r["event_id"]))) for r in rows]

    async def positions(self) -> dict[tuple[str, int], int]:
        rows = await self.pool.fetch("SELECT topic, partition, next_offset FROM consumer_positions "
                                     "WHERE consumer_group = 'contract-group'")
        return {(r["topic"], r["partition"]): r["next_offset"] for r in rows}


class TestPostgresUnitOfWork(UnitOfWorkContract):
    """PostgresUnitOfWork keeps the unit-of-work contract."""

    @pytest.fixture
    def backend(self, database_pool, database_url):
        return PostgresBackend(database_pool, database_url)


class TestClaimsRacingWorkers:
    """Two transactions claiming one command id (a partition handed over mid-batch): only one records it."""

    @pytest.fixture
    async def backend(self, database_url):
        pool = await create_pool(database_url)
        try:
            backend = PostgresBackend(pool, database_url)
            await backend.seed(ORDERS)
            yield backend
        finally:
            await pool.close()

    async def test_the_second_commit_loses_the_claim_and_writes_nothing(self, backend):
        """Both claims see the id as new; the later commit raises ClaimLost and none of its writes stay."""
        async with backend.unit_of_work() as first, backend.unit_of_work() as second:
            assert await first.claim([key("a", 0)]) == {"a"}
            assert await second.claim([key("a", 7), key("b", 8)]) == {"a", "b"}
            rejected("a", FREE).add_to(first)
            await first.commit()
            await second.lock_orders([FREE])
            applied("a", (FREE, CONFIRMED, ON_HOLD, 1)).add_to(second)
            with pytest.raises(ClaimLost):
                await second.commit()
        assert await backend.processed_outcomes() == {"a": "rejected:transition_not_allowed"}
        assert await backend.order_versions() == {FREE: (CONFIRMED.id, 0), PAID: (CONFIRMED.id, 0)}
        assert len(await backend.outbox_messages()) == 1  # the first one's rejection only


async def test_a_batch_that_loses_a_claim_is_redone_and_finds_the_duplicate(database_url):
    """process_batch redoes the batch after ClaimLost; the redo counts the lost command as a duplicate."""
    pool = await create_pool(database_url)
    try:
        backend = PostgresBackend(pool, database_url)
        await backend.seed(ORDERS)
        calls = 0

        def uow_factory():
            nonlocal calls
            calls += 1
            return backend.unit_of_work()

        async with pool.acquire() as racing, racing.transaction():  # another worker, its record not committed
            await racing.execute("INSERT INTO processed_commands (command_id, command_type, outcome, source) "
                                 "VALUES ('cmd-1', 'ChangeOrderStatus', 'applied', 'cmd:0:3')")
            value = json.dumps(change(FREE, "OnHold", command_id="cmd-1")).encode()
            source = SourceMessage("order-status.commands", 0, 3, b"11", value, (), None)
            topics = Topics("order-status.events", "order-status.dlq")
            batch = asyncio.create_task(process_batch([source], uow_factory, BatchConfig(topics, 50)))
            # it saw no record, decided, and waits on the unique key at commit
            await wait_for_lock_wait(pool, what="the batch waiting on the racing record's unique key")
            assert not batch.done()
        result = await asyncio.wait_for(batch, 10)
        assert calls == 2
        assert (result.outcomes, result.duplicates) == ([], 1)
        assert await backend.processed_outcomes() == {"cmd-1": "applied"}
        assert await backend.order_versions() == {FREE: (CONFIRMED.id, 0), PAID: (CONFIRMED.id, 0)}
    finally:
        await pool.close()
