"""`orderstatus replay` and `orderstatus republish`: operators' tools on the topics."""

from __future__ import annotations

import click

from service.entrypoints.cli.common import UserError, parse_datetime, run, with_conn, with_producer
from service.entrypoints.configs import consumer_groups
from service.ops.errors import OpsError
from service.ops.replay import replay as reset_offsets
from service.ops.republish import republish as publish_again
from service.runtime.settings import Settings


@click.command()
@click.option("--group", required=True)
@click.option("--topic", required=True)
@click.option("--to-datetime", default=None, help="ISO-8601; first offset at or after it.")
@click.option("--to-earliest", is_flag=True)
@click.option("--to-offset", "to_offset", multiple=True, help="PARTITION:OFFSET, repeatable.")
@click.option("--dry-run", is_flag=True)
@click.pass_obj
def replay(settings: Settings, group: str, topic: str, to_datetime: str | None, to_earliest: bool,
           to_offset: tuple[str, ...], dry_run: bool) -> None:
    """Reset an inactive group's offsets on a topic; prints partition: old -> new."""
    if sum([to_datetime is not None, to_earliest, bool(to_offset)]) != 1:
        raise UserError("give exactly one of --to-datetime, --to-earliest, --to-offset")
    offsets = {}
    for item in to_offset:
        try:
            partition, offset = (int(x) for x in item.split(":"))
        except ValueError:
            raise UserError(f"--to-offset wants PARTITION:OFFSET, got {item!r}") from None
        if partition < 0 or offset < 0:  # Kafka reads a negative committed offset as "none": a full re-read
            raise UserError(f"--to-offset wants a partition and an offset of 0 or more, got {item!r}")
        offsets[partition] = offset
    when = parse_datetime(to_datetime, "--to-datetime") if to_datetime else None
    try:
        moves = run(reset_offsets(consumer_groups(settings), group, topic, to_datetime=when, to_earliest=to_earliest,
                                  to_offsets=offsets or None, dry_run=dry_run))
    except OpsError as exc:
        raise UserError(str(exc)) from None
    for move in moves:
        old = "none" if move.old is None else move.old
        click.echo(f"{topic}:{move.partition}: {old} -> {move.new}{' (dry run)' if dry_run else ''}")


@click.command()
@click.option("--since", required=True, help="ISO-8601; events stored at or after it.")
@click.option("--order-id", type=int, default=None)
@click.pass_obj
def republish(settings: Settings, since: str, order_id: int | None) -> None:
    """Publish stored events again, with their original event ids, in their original order. Events come from the
    outbox, so this reaches back only as far as the retention (`orderstatus prune`, ORDERSTATUS_RETENTION_DAYS)
    kept its published rows."""
    when = parse_datetime(since, "--since")

    async def work(conn):
        return await with_producer(
            settings, lambda producer: publish_again(conn, producer, settings.events_topic, when, order_id)
        )

    count = with_conn(settings, work)
    click.echo(f"republished {count} {'event' if count == 1 else 'events'} to {settings.events_topic}")


COMMANDS = [replay, republish]
