"""`orderstatus lag`: how far the worker's and the notifier's consumer groups are behind."""

from __future__ import annotations

import click

from service.entrypoints.cli.common import UserError, print_json, run
from service.entrypoints.configs import consumer_lags
from service.ops.errors import OpsError
from service.runtime.settings import Settings


@click.command()
@click.option("--json", "as_json", is_flag=True, help="A JSON list instead of the table.")
@click.pass_obj
def lag(settings: Settings, as_json: bool) -> None:
    """Per group (worker, notifier) and partition: committed offset, end offset and lag."""
    try:
        rows = run(consumer_lags(settings))
    except OpsError as exc:
        raise UserError(str(exc)) from None
    if as_json:
        print_json([vars(row) for row in rows])
        return
    table = [("GROUP", "TOPIC", "PARTITION", "COMMITTED", "END", "LAG")] + [
        (r.group, r.topic, str(r.partition), "-" if r.committed is None else str(r.committed), str(r.end), str(r.lag))
        for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


COMMANDS = [lag]
