"""The relay's outbox contract against PostgresOutboxStore on the real (embedded) Postgres; its SQL for
the rows held behind a parked row is checked against the domain rule there."""

from __future__ import annotations

import pytest

from service.adapters.postgres import outbox
from service.adapters.postgres.connection import create_pool
from service.adapters.postgres.outbox_relay_store import PostgresOutboxStore
from service.contract.events import WireMessage
from tests.helpers.outbox_contract import OutboxStoreContract, Row


class PostgresBackend:
    """A pool on the test's database; the unit of work's writer; plain SQL as the reader."""

    def __init__(self, pool) -> None:
        self.pool = pool
        self.store = PostgresOutboxStore(pool)

    async def write(self, messages: list[WireMessage]) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await outbox.insert(conn, messages)

    async def rows(self) -> list[Row]:
        rows = await self.pool.fetch(
            """
            SELECT o.id, o.shard, o.topic, o.message_key, o.payload, o.held_behind,
                   CASE WHEN o.parked_at IS NOT NULL AND o.published_at IS NULL THEN 'parked'
                        WHEN o.published_at IS NOT NULL OR o.id <= c.published_through THEN 'published'
                        ELSE 'waiting' END AS state
              FROM outbox o JOIN outbox_cursor c USING (shard) ORDER BY o.id
            """
        )
        return [Row(r["id"], r["shard"], r["topic"], r["message_key"], bytes(r["payload"]), r["state"],
                    r["held_behind"]) for r in rows]


class TestPostgresOutboxStore(OutboxStoreContract):
    """PostgresOutboxStore keeps the relay's outbox contract."""

    @pytest.fixture
    async def backend(self, database_url):
        pool = await create_pool(database_url)
        try:
            yield PostgresBackend(pool)
        finally:
            await pool.close()
