"""The unit-of-work contract against PostgresUnitOfWork on the real (embedded) Postgres."""

from __future__ import annotations

import uuid

import pytest

from service.adapters.postgres.connection import create_pool
from service.adapters.postgres.rules import RulesCache
from service.adapters.postgres.unit_of_work import PostgresUnitOfWork
from service.contract.events import WireMessage
from tests.helpers.database import seed_database
from tests.helpers.unit_of_work_contract import UnitOfWorkContract


class PostgresBackend:
    """A pool on the test's database, one rules cache (as a worker has), and plain SQL as the reader."""

    def __init__(self, pool, database_url: str) -> None:
        self.pool = pool
        self.database_url = database_url
        self.rules_cache = RulesCache()

    def unit_of_work(self) -> PostgresUnitOfWork:
        return PostgresUnitOfWork(self.pool, self.rules_cache)

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


class TestPostgresUnitOfWork(UnitOfWorkContract):
    """PostgresUnitOfWork keeps the unit-of-work contract."""

    @pytest.fixture
    async def backend(self, database_url):
        pool = await create_pool(database_url)
        try:
            yield PostgresBackend(pool, database_url)
        finally:
            await pool.close()
