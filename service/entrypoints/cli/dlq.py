"""`orderstatus dlq list|show|redrive`: the dead letters of the commands topic (DESIGN §6.2, §11)."""

from __future__ import annotations

import contextlib
import sys

import click

from service.adapters.kafka.records import topic_records
from service.entrypoints.cli.common import UserError, parse_datetime, run, with_producer
from service.ops import dlq as ops
from service.ops.errors import OpsError
from service.runtime.settings import Settings

PROGRESS_FROM = 20  # records to scan before a progress bar is worth drawing


def _filters(command):
    for option in reversed([
        click.option("--since", default=None, help="ISO-8601; dead letters written at or after it."),
        click.option("--until", default=None, help="ISO-8601; dead letters written at or before it."),
        click.option("--reason", default=None, help="Only this error.reason (not_json, validation_failed, "
                                                    "unreadable, processing_failed, …)."),
    ]):
        command = option(command)
    return command


def _selection(since: str | None, until: str | None, reason: str | None, limit: int | None,
               positions: tuple[tuple[int, int], ...] = ()) -> ops.Selection:
    return ops.Selection(
        positions=positions,
        since=parse_datetime(since, "--since") if since else None,
        until=parse_datetime(until, "--until") if until else None,
        reason=reason, limit=limit,
    )


def _run(coro):
    try:
        return run(coro)
    except OpsError as exc:
        raise UserError(str(exc)) from None


@click.group()
def dlq() -> None:
    """Dead letters: list them, show one, redrive them after a fix."""


@dlq.command("list")
@_filters
@click.option("--limit", default=100, show_default=True, type=click.IntRange(min=1))
@click.option("--no-header", is_flag=True, help="Leave out the header row (for scripts).")
@click.pass_obj
def dlq_list(settings: Settings, since: str | None, until: str | None, reason: str | None, limit: int,
             no_header: bool) -> None:
    """A header row, then one tab-separated line per dead letter: POSITION (PARTITION:OFFSET), WRITTEN, REASON,
    ORIGINAL (topic:partition:offset), COMMAND_ID, SIZE, NOTES (redrives so far, truncated)."""
    selection = _selection(since, until, reason, limit + 1)

    async def work():
        async with topic_records(settings, settings.dlq_topic) as reader:
            return [letter async for letter in ops.letters(reader, selection)]

    found = _run(work())
    if found and not no_header:
        click.echo(ops.SUMMARY_HEADER)
    for letter in found[:limit]:
        click.echo(ops.summary_line(letter))
    if len(found) > limit:
        click.echo(f"(more than {ops.plural(limit, 'dead letter')} match; --limit N shows more)", err=True)
    if not found:
        click.echo("no dead letters", err=True)


@dlq.command("show")
@click.argument("position")
@click.option("--max-bytes", default=4096, show_default=True, type=click.IntRange(min=1),
              help="Bytes shown of the key, the value and each header; the rest is cut with a note.")
@click.pass_obj
def dlq_show(settings: Settings, position: str, max_bytes: int) -> None:
    """One dead letter (POSITION is PARTITION:OFFSET, or OFFSET when the DLQ has one partition): its headers,
    key and value, non-printable bytes escaped."""

    async def work():
        async with topic_records(settings, settings.dlq_topic) as reader:
            where = ops.parse_position(position, reader.partitions())
            return [letter async for letter in ops.letters(reader, ops.Selection(positions=(where,)))]

    [letter] = _run(work())
    for line in ops.render(letter, max_bytes):
        click.echo(line)


def _rate(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        rate = float(value.removesuffix("/s"))
    except ValueError:
        raise UserError(f"--rate wants N/s (messages per second), got {value!r}") from None
    if not rate > 0:
        raise UserError(f"--rate must be more than 0, got {value!r}")
    return rate


@dlq.command("redrive")
@click.option("--all", "everything", is_flag=True, help="Every dead letter the DLQ still holds.")
@click.option("--offset", "offsets", multiple=True, help="PARTITION:OFFSET (or OFFSET with one partition); "
                                                         "repeatable.")
@_filters
@click.option("--limit", default=None, type=click.IntRange(min=1), help="At most N dead letters.")
@click.option("--dry-run", is_flag=True, help="Print what would be sent; send nothing.")
@click.option("--rate", default=None, help="At most N/s messages per second (e.g. 50/s).")
@click.pass_obj
def dlq_redrive(settings: Settings, everything: bool, offsets: tuple[str, ...], since: str | None,
                until: str | None, reason: str | None, limit: int | None, dry_run: bool, rate: str | None) -> None:
    """Send dead letters back to their original topic (key, value and the original's headers, plus
    redrive.count and redrive.dlq-offset), in DLQ order. The worker processes each once: a command
    recorded as invalid is decided again, one that applied or was rejected is a duplicate, and
    redriving the same dead letter twice changes nothing the second time."""
    filtered = any(x is not None for x in (since, until, reason))
    if sum([everything, bool(offsets), filtered]) != 1:
        raise UserError("give exactly one of --all, --offset …, or filters (--since, --until, --reason)")
    per_second = _rate(rate)

    async def work():
        async with topic_records(settings, settings.dlq_topic) as reader:
            positions = tuple(ops.parse_position(o, reader.partitions()) for o in offsets)
            selection = _selection(since, until, reason, limit, positions)
            spans = None if positions else await ops.ranges(reader, selection)
            total = len(positions) if positions else ops.scan_size(spans)
            return await with_producer(settings, lambda producer: _redrive(reader, producer, selection, spans,
                                                                           total, dry_run, per_second))

    sent, skipped, topics = _run(work())
    verb = "would redrive" if dry_run else "redrove"
    where = ", ".join(sorted(topics)) or "-"
    click.echo(f"{verb} {ops.plural(sent, 'dead letter')} to {where}" + (f"; {skipped} skipped" if skipped else ""))


async def _redrive(reader, producer, selection, spans, total: int, dry_run: bool, rate: float | None):
    sent = skipped = 0
    topics: set[str] = set()
    show_bar = total >= PROGRESS_FROM and sys.stderr.isatty()
    # on a terminal the bar stands for the per-letter lines (they still go to a redirected stdout)
    per_letter = not (show_bar and sys.stdout.isatty())
    bar_context = (click.progressbar(length=total, label="redriving", file=sys.stderr) if show_bar
                   else contextlib.nullcontext())
    with bar_context as bar:
        scanned = bar.update if bar is not None else (lambda n: None)
        async for result in ops.redrive(reader, producer, selection, dry_run=dry_run, rate=rate, spans=spans,
                                        scanned=scanned):
            if isinstance(result, ops.Skipped):
                skipped += 1
                line = f"{result.letter.position}: skipped: {result.why}"
            else:
                sent += 1
                topics.add(result.topic)
                target = result.topic if result.offset is None else f"{result.topic}:{result.partition}:{result.offset}"
                line = f"{result.letter.position} -> {target} (redrive.count {result.count})"
            if per_letter or isinstance(result, ops.Skipped):
                click.echo(line)
    return sent, skipped, topics


COMMANDS = [dlq]
