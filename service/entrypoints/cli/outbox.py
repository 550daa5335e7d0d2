"""`orderstatus outbox status|parked|retry`: see and release what the relay could not publish."""

from __future__ import annotations

import click

from service.adapters.postgres import outbox_ops as store
from service.entrypoints.cli.common import UserError, print_json, with_conn
from service.runtime.settings import Settings


@click.group()
def outbox() -> None:
    """The outbox: backlog, parked rows, and retrying them after a fix."""


@outbox.command("status")
@click.pass_obj
def outbox_status(settings: Settings) -> None:
    """Unpublished rows, the age of the oldest, and parked rows, as JSON."""
    stats = with_conn(settings, store.stats)
    print_json({"unpublished": stats.backlog, "oldest_unpublished_age_s": stats.oldest_age_s, "parked": stats.parked})


@outbox.command("parked")
@click.option("--limit", default=1000, show_default=True, type=click.IntRange(min=1))
@click.pass_obj
def outbox_parked(settings: Settings, limit: int) -> None:
    """One line per parked row: id, when, topic, key, size, rows held back behind it, why."""
    rows = with_conn(settings, lambda conn: store.parked(conn, limit))
    for row in rows:
        key = row.key.decode("utf-8", "replace") if row.key is not None else "-"
        click.echo(f"{row.id}\t{row.parked_at.isoformat()}\t{row.topic}\tkey={key[:60]!r}\t{row.size} bytes\t"
                   f"{row.held_back} held back\t{row.reason}")
    if not rows:
        click.echo("no parked rows", err=True)


@outbox.command("retry")
@click.argument("ids", nargs=-1, required=True, type=int)
@click.pass_obj
def outbox_retry(settings: Settings, ids: tuple[int, ...]) -> None:
    """Make parked rows publishable again (after raising a limit, creating a topic, granting access…)."""
    released = with_conn(settings, lambda conn: store.unpark(conn, ids))
    for row_id in released:
        click.echo(f"{row_id}: released; the relay publishes it (and the rows behind it) next")
    missing = sorted(set(ids) - set(released))
    if missing:
        raise UserError(f"not parked (published already, or no such row): {', '.join(map(str, missing))}")


COMMANDS = [outbox]
