"""The `orderstatus` command line (DESIGN §4). Errors print one line to stderr and exit non-zero."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import sys
from pathlib import Path

import click

from service.settings import Settings


class UserError(click.ClickException):
    """A mistake of the caller: one line, exit code 1, no traceback."""


def _run(coro):
    # a one-shot command reports a failure in one line; aiokafka's own connection errors would repeat it
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        return asyncio.run(coro)
    except (OSError, asyncio.TimeoutError) as exc:
        raise UserError(f"cannot reach a service: {exc}") from None
    except Exception as exc:  # asyncpg / aiokafka connection failures carry their own classes
        from aiokafka.errors import KafkaConnectionError, KafkaError
        import asyncpg

        if isinstance(exc, (KafkaConnectionError, asyncpg.exceptions.CannotConnectNowError)):
            raise UserError(f"cannot reach a service: {exc}") from None
        if isinstance(exc, asyncpg.exceptions.UndefinedTableError):
            raise UserError(f"the database is not migrated ({exc}); run `orderstatus migrate`") from None
        if isinstance(exc, (KafkaError, asyncpg.PostgresError)):
            first_line = (str(exc).splitlines() or [""])[0]  # Postgres appends DETAIL/HINT lines
            raise UserError(f"{type(exc).__name__}: {first_line}") from None
        raise


def _print_json(data) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


@click.group()
@click.pass_context
def main(ctx: click.Context) -> None:
    """orderstatus: the order-status service and its operator tools."""
    from service.logging import configure_logging

    settings = Settings()
    configure_logging(settings.log_level)
    ctx.obj = settings


@main.command()
@click.pass_obj
def migrate(settings: Settings) -> None:
    """Apply the database migrations (safe to run concurrently and repeatedly)."""
    from service.adapters.database import migrate as run_migrations

    try:
        run_migrations(settings.database_url)
    except Exception as exc:
        raise UserError(f"migration failed: {exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    click.echo("database is up to date", err=True)


def _with_conn(settings: Settings, work):
    """Run `work(conn)` on one short-lived connection and return its result (one-shot commands)."""

    async def run():
        from service.adapters.database import connect

        conn = await connect(settings.database_url)
        try:
            return await work(conn)
        finally:
            await conn.close()

    return _run(run())


# ---------------------------------------------------------------- rules


@main.group()
def rules() -> None:
    """Check, load and draw the status rules."""


def _read_rules(path: str):
    from service.rulesfile import RulesFileError, load_rules_file

    try:
        return load_rules_file(path)
    except RulesFileError as exc:
        raise UserError(f"{path}: {exc}") from None


@rules.command("check")
@click.argument("file", type=click.Path(dir_okay=False))
def rules_check(file: str) -> None:
    """Validate a rules file without loading it."""
    ruleset = _read_rules(file)
    click.echo(f"{file}: ok ({len(ruleset.statuses)} statuses, {len(ruleset.transitions)} transitions)")


@rules.command("load")
@click.argument("file", type=click.Path(dir_okay=False))
@click.pass_obj
def rules_load(settings: Settings, file: str) -> None:
    """Validate a rules file and atomically replace the stored rules with it."""
    from service.adapters.rules_store import replace_rules

    ruleset = _read_rules(file)
    sha = hashlib.sha256(Path(file).read_bytes()).hexdigest()
    version = _with_conn(settings, lambda conn: replace_rules(conn, ruleset, sha))
    click.echo(f"{file}: loaded as rules version {version} ({len(ruleset.statuses)} statuses, {len(ruleset.transitions)} transitions)")


@rules.command("graph")
@click.option("--order-type", "order_type", default=None, help="Draw one order type only.")
@click.option("--format", "fmt", type=click.Choice(["mermaid", "svg"]), default="mermaid", show_default=True)
@click.option("-o", "output", type=click.Path(dir_okay=False), default=None, help="Write here instead of stdout.")
@click.option("--file", "rules_file", type=click.Path(dir_okay=False), default=None, help="Draw a rules file instead of the loaded rules.")
@click.pass_obj
def rules_graph(settings: Settings, order_type: str | None, fmt: str, output: str | None, rules_file: str | None) -> None:
    """Draw the state machine as Mermaid or SVG."""
    from service.graph import render_mermaid, render_svg

    if rules_file:
        ruleset = _read_rules(rules_file)
    else:
        ruleset = _with_conn(settings, _stored_rules)
    if order_type is not None and order_type not in ruleset.order_types:
        raise UserError(f"unknown order type {order_type!r} (known: {', '.join(sorted(ruleset.order_types))})")
    text = render_mermaid(ruleset, order_type) if fmt == "mermaid" else render_svg(ruleset, order_type)
    if output:
        Path(output).write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text)


async def _stored_rules(conn):
    from service.adapters.rules_store import fetch_rules

    ruleset = await fetch_rules(conn)
    if ruleset is None:
        raise UserError("no rules are loaded; run `orderstatus rules load FILE`")
    return ruleset


# ---------------------------------------------------------------- orders


@main.group()
def orders() -> None:
    """Import orders and their facts."""


@orders.command("import")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.pass_obj
def orders_import(settings: Settings, file: str) -> None:
    """Upsert orders from JSON lines (all or nothing)."""
    from service.ordersfile import OrdersFileError, parse_orders

    try:
        lines = (sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")).splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {file}: {exc}") from None

    async def run(conn) -> int:
        from service.adapters.orders_store import upsert_orders

        ruleset = await _stored_rules(conn)
        try:
            records = parse_orders(lines, ruleset)
        except OrdersFileError as exc:
            raise UserError(f"{file}: {exc}") from None
        return await upsert_orders(conn, records, ruleset)

    count = _with_conn(settings, run)
    click.echo(f"{file}: imported {count} orders")


# ---------------------------------------------------------------- topics


@main.group()
def topics() -> None:
    """Manage the Kafka topics."""


@topics.command("create")
@click.option("--partitions", default=6, show_default=True, type=click.IntRange(min=1))
@click.option("--replication-factor", default=1, show_default=True, type=click.IntRange(min=1))
@click.pass_obj
def topics_create(settings: Settings, partitions: int, replication_factor: int) -> None:
    """Create the commands, events and DLQ topics (existing ones are left alone)."""
    from service.adapters.kafka import create_topics

    outcome = _run(create_topics(settings, partitions, replication_factor))
    for name, what in outcome.items():
        click.echo(f"{name}: {what}")


# ---------------------------------------------------------------- worker and operator tools


@main.command()
@click.pass_obj
def worker(settings: Settings) -> None:
    """Run the command worker until SIGTERM/SIGINT."""
    from service.worker import main as run_worker

    sys.exit(run_worker(settings))


@main.command()
@click.argument("command_json", required=False)
@click.option("--file", "file", type=click.Path(dir_okay=False, allow_dash=True), help="JSON lines; - for stdin.")
@click.option("--no-validate", is_flag=True, help="Publish even what the worker would dead-letter.")
@click.pass_obj
def send(settings: Settings, command_json: str | None, file: str | None, no_validate: bool) -> None:
    """Publish commands: one JSON object, or JSON lines from --file (a missing command_id is generated)."""
    from service.ops import OpsError, prepare_command, send_commands

    if (command_json is None) == (file is None):
        raise UserError("give either one JSON command or --file F")
    if file is not None:
        try:
            text = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
        except OSError as exc:
            raise UserError(f"cannot read {file}: {exc.strerror}") from None
        lines = [line for line in text.splitlines() if line.strip()]
    else:
        lines = [sys.stdin.read() if command_json == "-" else command_json]
    try:
        prepared = [prepare_command(line, n, not no_validate) for n, line in enumerate(lines, start=1)]
    except OpsError as exc:
        raise UserError(str(exc)) from None
    for sent in _run(send_commands(settings, prepared)):
        click.echo(json.dumps(sent))


@main.command()
@click.argument("order_id", type=int)
@click.option("--role", required=True, type=click.Choice(["client", "staff", "manager", "system"]))
@click.option("--client-id", default=None)
@click.pass_obj
def transitions(settings: Settings, order_id: int, role: str, client_id: str | None) -> None:
    """Print the statuses an actor can move the order to (R13) as JSON."""
    from service import views
    from service.domain.model import Actor

    found = _with_conn(settings, lambda conn: views.transitions(conn, order_id, Actor("cli", role, client_id)))
    if found is None:
        raise UserError(f"order {order_id} not found")
    _print_json(found)


@main.command()
@click.argument("order_id", type=int)
@click.pass_obj
def history(settings: Settings, order_id: int) -> None:
    """Print the order's status changes and notes as JSON."""
    from service import views

    found = _with_conn(settings, lambda conn: views.history(conn, order_id))
    if found is None:
        raise UserError(f"order {order_id} not found")
    _print_json(found)


def _parse_datetime(value: str, what: str):
    from datetime import datetime, timezone

    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise UserError(f"{what}: not an ISO-8601 date-time: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


@main.command()
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
    from service.ops import OpsError, replay as reset_offsets

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
    when = _parse_datetime(to_datetime, "--to-datetime") if to_datetime else None
    try:
        moves = _run(reset_offsets(settings, group, topic, to_datetime=when, to_earliest=to_earliest,
                                   to_offsets=offsets or None, dry_run=dry_run))
    except OpsError as exc:
        raise UserError(str(exc)) from None
    for move in moves:
        old = "none" if move.old is None else move.old
        click.echo(f"{topic}:{move.partition}: {old} -> {move.new}{' (dry run)' if dry_run else ''}")


@main.command()
@click.option("--since", required=True, help="ISO-8601; events stored at or after it.")
@click.option("--order-id", type=int, default=None)
@click.pass_obj
def republish(settings: Settings, since: str, order_id: int | None) -> None:
    """Publish stored events again, with their original event ids, in their original order."""
    from service.ops import republish as publish_again

    when = _parse_datetime(since, "--since")
    count = _with_conn(settings, lambda conn: publish_again(settings, conn, when, order_id))
    click.echo(f"republished {count} events to {settings.events_topic}")


# notifier commands register here (service/entrypoints/notifier_cli.py)
from service.entrypoints import notifier_cli as _notifier_cli  # noqa: E402  (needs main defined above)

main.add_command(_notifier_cli.notifier)
main.add_command(_notifier_cli.notifications)


# ---------------------------------------------------------------- dev


@main.command()
@click.option("--demo", is_flag=True, help="Also send a scripted command per rule and print the outcomes.")
@click.option("--data-dir", type=click.Path(file_okay=False), default=".orderstatus-dev", show_default=True)
def dev(demo: bool, data_dir: str) -> None:
    """Run everything on this machine with no Docker: Postgres, broker, SMTP sink, worker, notifier."""
    from service.entrypoints.dev import run_dev

    sys.exit(run_dev(Path(data_dir), demo=demo))


if __name__ == "__main__":  # pragma: no cover
    main()
