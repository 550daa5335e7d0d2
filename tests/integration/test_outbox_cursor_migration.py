"""Migration 0006 (the relay's per-shard cursor) on an outbox written the old way, and back: what was
published stays published, what was not is published once, in order, and a row that waited behind a
parked one is parked behind it."""

from __future__ import annotations

import asyncio

from alembic import command
from alembic.config import Config

from service.adapters.postgres.connection import MIGRATIONS_DIR, create_pool
from service.adapters.postgres.outbox_relay_store import PostgresOutboxStore
from service.worker.relay import OutboxRelay
from tests.helpers.fakes import FakeProducer

# (payload, key, shard, published, parked) in id order, as revision 0005 left them
OLD_ROWS = [
    ("published-1", "A", 0, True, False),
    ("published-2", "B", 0, True, False),
    ("waiting-1", "A", 0, False, False),
    ("parked", "B", 0, False, True),
    ("behind-the-parked", "B", 0, False, False),
    ("waiting-2", "C", 0, False, False),
    ("published-other-shard", "D", 2, True, False),
]


def alembic(database_url: str, action: str, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["database_url"] = database_url
    getattr(command, action)(config, revision)


async def test_the_cursor_starts_where_publishing_stopped_and_the_downgrade_gives_the_marks_back(database_url):
    """0005 -> 0006: the cursors start before each shard's first unpublished row; the relay publishes only
    the unpublished rows, in id order, and parks the row behind the parked one; back to 0005, the rows
    the cursor passed carry published_at again and the held row waits unparked, as 0005 expects."""
    await asyncio.to_thread(alembic, database_url, "downgrade", "0005")
    pool = await create_pool(database_url)
    try:
        for payload, key, shard, published, parked in OLD_ROWS:
            await pool.execute(
                "INSERT INTO outbox (topic, message_key, payload, shard, published_at, parked_at) "
                "VALUES ('events', $1, $2, $3, CASE WHEN $4 THEN now() END, CASE WHEN $5 THEN now() END)",
                key.encode(), payload.encode(), shard, published, parked,
            )
        ids = {r["payload"].decode(): r["id"] for r in await pool.fetch("SELECT id, payload FROM outbox")}
        await pool.close()
        await asyncio.to_thread(alembic, database_url, "upgrade", "head")
        pool = await create_pool(database_url)

        cursors = {r["shard"]: r["published_through"] for r in await pool.fetch("SELECT * FROM outbox_cursor")}
        assert cursors == {0: ids["published-2"], 2: ids["published-other-shard"]}
        producer = FakeProducer()
        await OutboxRelay(PostgresOutboxStore(pool), producer, owned_shards=lambda: {0, 2}).drain()
        assert [s.value for s in producer.sent] == [b"waiting-1", b"waiting-2"]
        held = await pool.fetchrow("SELECT held_behind, parked_at FROM outbox WHERE id = $1",
                                   ids["behind-the-parked"])
        assert held["held_behind"] == ids["parked"] and held["parked_at"] is not None

        await pool.close()
        await asyncio.to_thread(alembic, database_url, "downgrade", "0005")
        pool = await create_pool(database_url)
        rows = await pool.fetch("SELECT payload, published_at IS NOT NULL AS published, "
                                "parked_at IS NOT NULL AS parked FROM outbox ORDER BY id")
        assert [(r["payload"].decode(), r["published"], r["parked"]) for r in rows] == [
            ("published-1", True, False), ("published-2", True, False), ("waiting-1", True, False),
            ("parked", False, True), ("behind-the-parked", False, False), ("waiting-2", True, False),
            ("published-other-shard", True, False),
        ]
    finally:
        await pool.close()
        await asyncio.to_thread(alembic, database_url, "upgrade", "head")
