"""`orderstatus send`: publish commands."""

from __future__ import annotations

import json
import sys

import click

from service.adapters.kafka.replies import EventsTail
from service.entrypoints.cli.common import UserError, read_text, run, with_producer
from service.ops.errors import OpsError
from service.ops.events import exit_code
from service.ops.send import prepare_command, send_and_wait, send_commands
from service.runtime.auth import TOKEN_HEADER
from service.runtime.settings import Settings


@click.command()
@click.argument("command_json", required=False)
@click.option("--file", "file", type=click.Path(dir_okay=False, allow_dash=True), help="JSON lines; - for stdin.")
@click.option("--no-validate", is_flag=True, help="Publish even what the worker would dead-letter.")
@click.option("--token", default=None, envvar="ORDERSTATUS_ACTOR_TOKEN",
              help="An actor token (orderstatus tokens issue) sent as header actor-token.")
@click.option("--wait", is_flag=True, help="Print each command's outcome events; exit 0 when all applied, 3 when "
                                          "any was rejected (in whole or in part), 4 when any timed out.")
@click.option("--timeout", default=30.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Seconds --wait waits for the outcomes, from the publish.")
@click.pass_obj
def send(settings: Settings, command_json: str | None, file: str | None, no_validate: bool, token: str | None,
         wait: bool, timeout: float) -> None:
    """Publish commands: one JSON object, or JSON lines from --file (a missing command_id is generated)."""
    if (command_json is None) == (file is None):
        raise UserError("give either one JSON command or --file F")
    if file is not None:
        lines = [line for line in read_text(file).splitlines() if line.strip()]
    else:
        lines = [read_text("-") if command_json == "-" else command_json]
    try:
        prepared = [prepare_command(line, n, not no_validate) for n, line in enumerate(lines, start=1)]
    except OpsError as exc:
        raise UserError(str(exc)) from None
    headers = [(TOKEN_HEADER, token.strip().encode())] if token else []
    if wait:
        sys.exit(_send_and_wait(settings, prepared, headers, timeout))
    sent = run(with_producer(settings, lambda producer: send_commands(producer, settings.commands_topic, prepared,
                                                                     headers)))
    for line in sent:
        click.echo(json.dumps(line))


def _send_and_wait(settings: Settings, prepared, headers, timeout: float) -> int:
    """Publish with the events topic already followed from its end; print the sent lines, then each
    command's outcome events (JSON lines); the exit code says applied (0), rejected (3) or timed out (4)."""

    async def work():
        tail = EventsTail(settings)
        try:
            await tail.start()  # before the publish: the outcome cannot slip past
            return await with_producer(settings, lambda producer: send_and_wait(
                producer, tail, settings.commands_topic, prepared, headers, timeout))
        finally:
            await tail.stop()

    sent, verdicts = run(work())
    for line in sent:
        click.echo(json.dumps(line))
    for found in verdicts:
        for event in found.events:
            click.echo(json.dumps(event))
        if found.outcome == "timeout":
            click.echo(f"no outcome for command {found.command_id} within {timeout:g}s", err=True)
    return exit_code(verdicts)


COMMANDS = [send]
