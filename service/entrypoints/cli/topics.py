"""`orderstatus topics create`."""

from __future__ import annotations

import click

from service.adapters.kafka.admin import create_topics
from service.entrypoints.cli.common import run
from service.runtime.settings import Settings


@click.group()
def topics() -> None:
    """Manage the Kafka topics."""


@topics.command("create")
@click.option("--partitions", default=6, show_default=True, type=click.IntRange(min=1))
@click.option("--replication-factor", default=1, show_default=True, type=click.IntRange(min=1))
@click.pass_obj
def topics_create(settings: Settings, partitions: int, replication_factor: int) -> None:
    """Create the commands, events and DLQ topics (existing ones are left alone)."""
    for name, what in run(create_topics(settings, partitions, replication_factor)).items():
        click.echo(f"{name}: {what}")


COMMANDS = [topics]
