"""`orderstatus send`: publish commands."""

from __future__ import annotations

import json
import sys

import click

from service.adapters.kafka.replies import EventsTail
from service.entrypoints.cli.common import UserError, read_text, run, with_producer
from service.ops.errors import OpsError
from service.ops.events import exit_code, outcome_lines
from service.ops.send import prepare_command, send_and_wait, send_commands
from service.runtime.auth import TOKEN_HEADER, AuthConfigError, NotAuthenticated, TokenVerifier, looks_like_jwt
from service.runtime.settings import Settings


@click.command()
@click.argument("command_json", required=False)
@click.option("--file", "file", type=click.Path(dir_okay=False, allow_dash=True), help="JSON lines; - for stdin.")
@click.option("--no-validate", is_flag=True, help="Publish even what the worker would dead-letter.")
@click.option("--token", default=None, envvar="ORDERSTATUS_ACTOR_TOKEN",
              help="An actor token (orderstatus tokens issue) sent as header actor-token.")
@click.option("--wait", is_flag=True, help="Print each command's outcome events; exit 0 when all applied, 3 when "
                                          "any was rejected (in whole or in part), 4 when any timed out.")
@click.option("--json/--human", "as_json", default=None,
              help="--wait's output: JSON lines (the sent lines, then the outcome events) or one human line per "
                   "outcome. Default: human on a terminal, JSON when piped (scripts keep their JSON).")
@click.option("--timeout", default=30.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Seconds --wait waits for the outcomes, from the publish.")
@click.pass_obj
def send(settings: Settings, command_json: str | None, file: str | None, no_validate: bool, token: str | None,
         wait: bool, timeout: float, as_json: bool | None) -> None:
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
    if token:
        check_token(settings, token.strip())
    headers = [(TOKEN_HEADER, token.strip().encode())] if token else []
    if wait:
        sys.exit(_send_and_wait(settings, prepared, headers, timeout,
                                not sys.stdout.isatty() if as_json is None else as_json))
    sent = run(with_producer(settings, lambda producer: send_commands(producer, settings.commands_topic, prepared,
                                                                     headers)))
    for line in sent:
        click.echo(json.dumps(line))


def check_token(settings: Settings, token: str) -> None:
    """Refuse a `--token` the worker would refuse, here and in one sentence: verified with the configured keys
    (public keys or JWKS, else the public half of ORDERSTATUS_AUTH_PRIVATE_KEY_FILE), or at least checked to be a
    JWT when there are none — a token means the same on every face, never accepted silently."""
    try:
        verifier = _local_verifier(settings)
    except AuthConfigError as exc:
        raise UserError(f"--token cannot be checked: {exc}") from None
    if verifier is None:
        if not looks_like_jwt(token):
            raise UserError("--token: the actor token is not a JWT (expected three base64url parts separated by "
                            "dots, as `orderstatus tokens issue` prints)")
        return
    try:
        verifier.verify(token)
    except NotAuthenticated as exc:
        raise UserError(f"--token refused: {exc}") from None


def _local_verifier(settings: Settings) -> TokenVerifier | None:
    if settings.auth_jwks_file or settings.auth_public_keys:
        return TokenVerifier.from_files(settings.auth_jwks_file, settings.auth_public_keys, settings.auth_issuer,
                                        settings.auth_audience, settings.auth_leeway_s)
    if settings.auth_private_key_file:
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        try:
            with open(settings.auth_private_key_file, "rb") as pem:
                key = load_pem_private_key(pem.read(), password=None)
        except (OSError, ValueError, TypeError) as exc:
            raise AuthConfigError(f"cannot read ORDERSTATUS_AUTH_PRIVATE_KEY_FILE: {exc}") from None
        return TokenVerifier([key.public_key()], settings.auth_issuer, settings.auth_audience, settings.auth_leeway_s)
    return None


def _send_and_wait(settings: Settings, prepared, headers, timeout: float, as_json: bool) -> int:
    """Publish with the events topic already followed from its end; then print either the sent lines and each
    command's outcome events (JSON lines) or one human line per outcome; the exit code says applied (0),
    rejected (3) or timed out (4)."""

    async def work():
        tail = EventsTail(settings)
        try:
            await tail.start()  # before the publish: the outcome cannot slip past
            return await with_producer(settings, lambda producer: send_and_wait(
                producer, tail, settings.commands_topic, prepared, headers, timeout))
        finally:
            await tail.stop()

    sent, verdicts = run(work())
    if not as_json:
        for found in verdicts:
            for line in outcome_lines(found):
                click.echo(line)
        return exit_code(verdicts)
    for line in sent:
        click.echo(json.dumps(line))
    for found in verdicts:
        for event in found.events:
            click.echo(json.dumps(event))
        if found.verdict == "timeout":
            click.echo(f"no outcome for command {found.command_id} within {timeout:g}s", err=True)
    return exit_code(verdicts)


COMMANDS = [send]
