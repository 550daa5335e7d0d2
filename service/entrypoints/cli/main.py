"""The `orderstatus` command line (DESIGN §4): the root group and its command groups, one module each.
Errors print one line to stderr and exit non-zero."""

from __future__ import annotations

import click
from pydantic import ValidationError

from service.entrypoints.cli import (
    console,
    database,
    dev,
    dlq,
    events,
    lag,
    notifications,
    ops,
    orders,
    outbox,
    processes,
    prune,
    queries,
    rules,
    send,
    tokens,
    topics,
)
from service.entrypoints.cli.common import UserError
from service.runtime.logging import configure_logging
from service.runtime.settings import Settings


@click.group()
@click.pass_context
def main(ctx: click.Context) -> None:
    """orderstatus: the order-status service and its operator tools."""
    settings = _settings()
    configure_logging(settings.log_level)
    ctx.obj = settings


def _settings() -> Settings:
    """The settings from the environment; invalid ones are one line naming the variables. Never
    str(ValidationError): its `input_value` would print the values, secrets included."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False, include_input=False):
            message = error["msg"].removeprefix("Value error, ")
            field = ".".join(str(part) for part in error["loc"])
            problems.append(f"ORDERSTATUS_{field.upper()}: {message}" if field else message)
        raise UserError("invalid settings: " + "; ".join(problems)) from None


for module in (database, rules, orders, topics, processes, send, queries, ops, outbox, notifications, tokens, dev,
               dlq, events, lag, prune, console):
    for command in module.COMMANDS:
        main.add_command(command)
