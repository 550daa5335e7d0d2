"""The relay's outbox contract against PostgresOutboxStore on the real (embedded) Postgres (its SQL for
the rows held behind a parked row is checked against the domain rule there), and the line `outbox retry`
moves checked against the same rule."""

from __future__ import annotations

import pytest

from service.adapters.postgres import outbox, outbox_ops
from service.adapters.postgres.connection import create_pool
from service.adapters.postgres.outbox_relay_store import PostgresOutboxStore
from service.contract.events import WireMessage
from service.domain.outbox import Parking, line_of
from tests.helpers.outbox_contract import BIG, OutboxStoreContract, Row, ids, msg


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

    async def age(self, value: str, seconds: float) -> None:
        done = await self.pool.execute("UPDATE outbox SET created_at = now() - make_interval(secs => $2) "
                                       "WHERE payload = $1", value.encode(), seconds)
        assert done == "UPDATE 1"


class TestPostgresOutboxStore(OutboxStoreContract):
    """PostgresOutboxStore keeps the relay's outbox contract."""

    @pytest.fixture
    def backend(self, database_pool):
        return PostgresBackend(database_pool)


class TestRetryMovesALine:
    async def test_retry_moves_the_parked_row_and_the_unpublished_rows_of_its_line_to_the_end(self, database_url):
        """unpark moves exactly the rows the domain rule puts in the parked row's line (held behind it, or not
        reached yet), in their order, to the end of the shard; other keys, topics and shards stay."""
        pool = await create_pool(database_url)
        try:
            backend = PostgresBackend(pool)
            await backend.write([msg("head"), msg("published", key=b"2"), msg("shard 1", 1)])
            row = await ids(backend)
            async with backend.store.lock_round(1000, [0, 1], BIG) as batch:
                await batch.settle({0: row["published"], 1: row["shard 1"]}, [], [Parking(row["head"], "refused")])
            await backend.write([msg("held"), msg("no key", key=None), msg("other topic", topic="dlq"),
                                 msg("other shard", 1)])
            row = await ids(backend)
            async with backend.store.lock_round(1000, [0], BIG) as batch:
                await batch.settle({0: row["other topic"]}, [], [Parking(row["held"], "held", row["head"])])
            await backend.write([msg("not reached")])
            before = await backend.rows()
            [head] = [r for r in before if r.id == row["head"]]
            in_line = [r.value for r in before
                       if r.state != "published" and line_of(r.stored()) == line_of(head.stored())]
            async with pool.acquire() as conn:
                assert await outbox_ops.unpark(conn, [row["head"]]) == [row["head"]]
            after = await backend.rows()
            last_before = max(r.id for r in before)
            assert [r.value for r in after if r.id > last_before] == in_line == [b"head", b"held", b"not reached"]
            assert {r.value for r in after if r.id <= last_before} == {r.value for r in before} - set(in_line)
            assert all(r.state == "waiting" for r in after if r.id > last_before)
        finally:
            await pool.close()
