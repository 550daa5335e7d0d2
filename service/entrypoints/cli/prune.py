"""`orderstatus prune`: delete old published outbox rows, processed-command and notification records."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import click

from service.entrypoints.cli.common import UserError, run, with_conn
from service.entrypoints.configs import consumer_groups, pruned_topics
from service.ops import prune as ops
from service.ops.errors import OpsError
from service.runtime.settings import Settings


@click.command()
@click.option("--older-than", "older_than", default=None,
              help="Age of what goes: 30d, 12h, 90m, 3600s (default: ORDERSTATUS_RETENTION_DAYS, else 30d).")
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@click.option("--force", is_flag=True, help="Prune even when a topic may keep messages longer than the retention, "
                                            "or the broker does not say how long (a replay could then re-apply "
                                            "commands or re-send emails).")
@click.option("--batch-size", default=None, type=click.IntRange(min=1),
              help="Rows per delete statement (default: ORDERSTATUS_RETENTION_BATCH_SIZE).")
@click.pass_obj
def prune(settings: Settings, older_than: str | None, dry_run: bool, force: bool, batch_size: int | None) -> None:
    """Delete, in bounded batches, published outbox rows, processed-command records and sent/failed notification
    records older than the retention. Refused when a topic keeps its messages longer than that (or the broker
    does not report how long): replaying such a topic would re-apply commands or re-send emails. A --dry-run is
    never refused: it counts and warns. `republish`
    then reaches back only as far as the retention."""
    try:
        age = ops.parse_age(older_than) if older_than else timedelta(days=settings.retention_days or 30)
        keeps = run(ops.topics_keep(consumer_groups(settings), pruned_topics(settings)))
    except OpsError as exc:
        raise UserError(str(exc)) from None
    reason = ops.refusal(age, keeps)
    if reason is not None and not force and not dry_run:
        raise UserError(f"prune refused: {reason}")
    for topic in keeps:
        click.echo(f"topic {topic.describe()}")
    if reason is not None:  # a dry run deletes nothing: it counts, and says what a real run would meet
        click.echo(f"warning: forced past the check: {reason}" if force
                   else f"warning: a prune without --dry-run would be refused: {reason}", err=True)
    cutoff = datetime.now(timezone.utc) - age
    counts = with_conn(settings, lambda conn: ops.prune(
        conn, cutoff, batch_size=batch_size or settings.retention_batch_size, dry_run=dry_run))
    verb = "would delete" if dry_run else "deleted"
    for table in ops.TABLES:
        click.echo(f"{table}: {verb} {counts[table]} {'row' if counts[table] == 1 else 'rows'}")
    click.echo(f"retention {ops.human(age.total_seconds())}: rows from before {cutoff.isoformat(timespec='seconds')}"
               + (" (dry run)" if dry_run else ""))


COMMANDS = [prune]
