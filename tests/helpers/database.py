"""Seeding a test's database (and its topics) with the sample data (testkit.seeding, shared with the
benchmark), and reading it back with plain SQL."""

from __future__ import annotations

import asyncpg

from service.adapters.kafka.admin import create_topics
from service.adapters.postgres.connection import connect
from service.runtime.settings import Settings
from testkit import seeding
from testkit.paths import SAMPLE_ORDERS, SAMPLE_RULES  # noqa: F401 (the tests' names for them)
from testkit.seeding import order_lines, seed_database  # noqa: F401 (the tests' names for them)

# an outbox row not published yet (a condition on `outbox`): parked, or after its shard's relay cursor
# and not published out of line
UNPUBLISHED = ("(outbox.published_at IS NULL AND (outbox.parked_at IS NOT NULL OR outbox.id > coalesce("
               "(SELECT c.published_through FROM outbox_cursor c WHERE c.shard = outbox.shard), 0)))")


def url_of(settings: Settings) -> str:
    """The URL of the settings' database (Settings keeps it as a secret; a plain string passes as it is)."""
    url = settings.database_url
    return url.get_secret_value() if hasattr(url, "get_secret_value") else url


def on_database(settings: Settings, url: str, **changes) -> Settings:
    """A copy of the settings pointing at another database (other fields changed as given)."""
    kept = settings.database_url
    return settings.model_copy(update={"database_url": type(kept)(url) if hasattr(kept, "get_secret_value") else url,
                                       **changes})


async def seed(settings: Settings, orders: list[dict] | None = None, partitions: int = 3) -> None:
    """Load the sample rules, import the sample orders (or the given ones), create the topics."""
    await seed_database(url_of(settings), orders)
    await create_topics(settings, partitions, 1)


async def import_orders(settings: Settings, orders: list[dict]) -> None:
    """Import more orders under the rules already loaded."""
    await seeding.import_orders(url_of(settings), orders)


async def query(database_url: str, sql: str, *args) -> list[asyncpg.Record]:
    """Rows of one statement on a short-lived connection (JSON columns decoded, as the service reads them)."""
    conn = await connect(database_url)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def fetch(settings: Settings, sql: str, *args) -> list[asyncpg.Record]:
    """Rows of one statement in this test's database."""
    return await query(url_of(settings), sql, *args)


async def fetchval(settings: Settings, sql: str, *args):
    """The first column of the first row (None when there is no row)."""
    rows = await fetch(settings, sql, *args)
    return rows[0][0] if rows else None
