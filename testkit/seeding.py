"""Seeding a database with the sample rules and orders, through the service's own parsers and stores."""

from __future__ import annotations

import json

from service.adapters.postgres.connection import connect
from service.adapters.postgres.orders import upsert_orders
from service.adapters.postgres.rules import fetch_rules, replace_rules
from service.contract.orders_file import parse_orders
from service.contract.rules_file import load_rules_file
from testkit.paths import SAMPLE_ORDERS, SAMPLE_RULES


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


async def import_orders(database_url: str, orders: list[dict]) -> None:
    """Import more orders under the rules already loaded."""
    conn = await connect(database_url)
    try:
        rules = await fetch_rules(conn)
        await upsert_orders(conn, parse_orders(order_lines(orders), rules), rules)
    finally:
        await conn.close()
