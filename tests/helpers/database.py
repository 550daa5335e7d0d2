"""Seeding a test's database (and its topics) with the sample data, and reading it back with plain SQL."""

from __future__ import annotations

import json
from pathlib import Path

import asyncpg

from service.adapters.kafka.admin import create_topics
from service.adapters.postgres.connection import connect
from service.adapters.postgres.orders import upsert_orders
from service.adapters.postgres.rules import fetch_rules, replace_rules
from service.contract.orders_file import parse_orders
from service.contract.rules_file import load_rules_file
from service.runtime.settings import Settings

SAMPLES = Path(__file__).resolve().parents[2] / "service" / "devkit" / "samples"
SAMPLE_RULES = SAMPLES / "rules.yaml"
SAMPLE_ORDERS = SAMPLES / "orders.jsonl"

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


def order_lines(orders: list[dict] | None) -> list[str]:
    """The given orders as orders-file lines, or the sample orders file's lines when none are given."""
    return [json.dumps(o) for o in orders] if orders is not None else SAMPLE_ORDERS.read_text().splitlines()


async def seed_database(database_url: str, orders: list[dict] | None = None) -> None:
    """Load the sample rules and import the sample orders (or the given ones)."""
    conn = await connect(database_url)
    try:
        await replace_rules(conn, load_rules_file(SAMPLE_RULES))
        rules = await fetch_rules(conn)
        await upsert_orders(conn, parse_orders(order_lines(orders), rules), rules)
    finally:
        await conn.close()


async def seed(settings: Settings, orders: list[dict] | None = None, partitions: int = 3) -> None:
    """Load the sample rules, import the sample orders (or the given ones), create the topics."""
    await seed_database(url_of(settings), orders)
    await create_topics(settings, partitions, 1)


async def import_orders(settings: Settings, orders: list[dict]) -> None:
    """Import more orders under the rules already loaded."""
    conn = await connect(url_of(settings))
    try:
        rules = await fetch_rules(conn)
        await upsert_orders(conn, parse_orders(order_lines(orders), rules), rules)
    finally:
        await conn.close()


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
