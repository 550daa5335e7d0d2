"""`orderstatus send`: publish commands."""

from __future__ import annotations

import json

import click

from service.entrypoints.cli.common import UserError, read_text, run, with_producer
from service.ops.errors import OpsError
from service.ops.send import prepare_command, send_commands
from service.runtime.auth import TOKEN_HEADER
from service.runtime.settings import Settings


@click.command()
@click.argument("command_json", required=False)
@click.option("--file", "file", type=click.Path(dir_okay=False, allow_dash=True), help="JSON lines; - for stdin.")
@click.option("--no-validate", is_flag=True, help="Publish even what the worker would dead-letter.")
@click.option("--token", default=None, envvar="ORDERSTATUS_ACTOR_TOKEN",
              help="An actor token (orderstatus tokens issue) sent as header actor-token.")
@click.pass_obj
def send(settings: Settings, command_json: str | None, file: str | None, no_validate: bool, token: str | None) -> None:
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
    sent = run(with_producer(settings, lambda producer: send_commands(producer, settings.commands_topic, prepared,
                                                                     headers)))
    for line in sent:
        click.echo(json.dumps(line))


COMMANDS = [send]
