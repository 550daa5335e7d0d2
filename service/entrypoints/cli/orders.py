"""`orderstatus orders import`."""

from __future__ import annotations

import click

from service.adapters.postgres.orders import ImportResult, upsert_orders
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

    async def run(conn) -> ImportResult:
        ruleset = await stored_rules(conn)
        try:
            records = parse_orders(lines, ruleset)
        except OrdersFileError as exc:
            raise UserError(f"{file}: {exc}") from None
        return await upsert_orders(conn, records, ruleset)

    result = with_conn(settings, run)
    click.echo(f"{file}: {describe_import(result)}")


def describe_import(result: ImportResult) -> str:
    """One line: how many orders, and how many kept the status the service gave them."""
    line = f"imported {result.imported} order{'' if result.imported == 1 else 's'}"
    if result.kept_status:
        line += (f"; {result.kept_status} already changed by the service kept their status (the history's last), "
                 f"facts updated")
    if result.differing:
        shown = ", ".join(map(str, result.differing[:10])) + (", …" if len(result.differing) > 10 else "")
        line += (f"; {len(result.differing)} differ from the file's status ({shown}): change them with a command "
                 f"(e.g. a manager's OverrideOrderStatuses)")
    return line


COMMANDS = [orders]
