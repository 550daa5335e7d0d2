"""`orderstatus topics create`."""

from __future__ import annotations

import click

from service.adapters.errors import TopicNotCreated
from service.adapters.kafka.admin import create_topics
from service.entrypoints.cli.common import UserError, run
from service.ops.errors import OpsError
from service.ops.prune import parse_age
from service.runtime.settings import Settings

DAY_MS = 86_400_000


@click.group()
def topics() -> None:
    """Manage the Kafka topics."""


@topics.command("create")
@click.option("--partitions", default=6, show_default=True, type=click.IntRange(min=1))
@click.option("--replication-factor", default=1, show_default=True, type=click.IntRange(min=1))
@click.option("--min-insync-replicas", default=None, type=click.IntRange(min=1),
              help="The topics' min.insync.replicas: how many replicas must have a write before it is "
                   "acknowledged (acks=all). Default: 2 when the replication factor is 3 or more, else 1.")
@click.option("--retention", default=None,
              help="How long the topics keep messages (7d, 12h, …), set explicitly as retention.ms, with segment.ms "
                   "the smaller of it and one day. Default: the broker's (which the embedded dev broker does not "
                   "report, so `orderstatus prune` cannot check it there).")
@click.pass_obj
def topics_create(settings: Settings, partitions: int, replication_factor: int,
                  min_insync_replicas: int | None, retention: str | None) -> None:
    """Create the commands, events and DLQ topics (existing ones are left alone)."""
    retention_ms = segment_ms = None
    if retention is not None:
        try:
            retention_ms = int(parse_age(retention).total_seconds() * 1000)
        except OpsError as exc:
            raise UserError(f"--retention: {exc}") from None
        segment_ms = min(retention_ms, DAY_MS)
    if min_insync_replicas is not None and min_insync_replicas > replication_factor:
        raise UserError(f"--min-insync-replicas {min_insync_replicas} is more than the replication factor "
                        f"{replication_factor}: no write could ever be acknowledged")
    try:
        created = run(create_topics(settings, partitions, replication_factor, min_insync_replicas,
                                    retention_ms=retention_ms, segment_ms=segment_ms))
    except TopicNotCreated as exc:
        raise UserError(str(exc)) from None
    for name, what in created.items():
        click.echo(f"{name}: {what}")


COMMANDS = [topics]
