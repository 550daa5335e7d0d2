"""`orderstatus orders import`."""

from __future__ import annotations

import click

from service.adapters.postgres.orders import upsert_orders
from service.contract.orders_file import OrdersFileError, parse_orders
from service.entrypoints.cli.common import UserError, read_text, with_conn
from service.entrypoints.cli.rules import stored_rules
from service.runtime.settings import Settings


@click.group()
def orders() -> None:
    """Import orders and their facts."""


@orders.command("import")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.pass_obj
def orders_import(settings: Settings, file: str) -> None:
    """Upsert orders from JSON lines (all or nothing)."""
    lines = read_text(file).splitlines()

    async def run(conn) -> int:
        ruleset = await stored_rules(conn)
        try:
            records = parse_orders(lines, ruleset)
        except OrdersFileError as exc:
            raise UserError(f"{file}: {exc}") from None
        return await upsert_orders(conn, records, ruleset)

    count = with_conn(settings, run)
    click.echo(f"{file}: imported {count} orders")


COMMANDS = [orders]
