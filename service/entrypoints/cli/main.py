"""The `orderstatus` command line (DESIGN §4): the root group and its command groups, one module each.
Errors print one line to stderr and exit non-zero."""

from __future__ import annotations

import click

from service.entrypoints.cli import (
    database,
    dev,
    notifications,
    ops,
    orders,
    outbox,
    processes,
    queries,
    rules,
    send,
    tokens,
    topics,
)
from service.runtime.logging import configure_logging
from service.runtime.settings import Settings


@click.group()
@click.pass_context
def main(ctx: click.Context) -> None:
    """orderstatus: the order-status service and its operator tools."""
    settings = Settings()
    configure_logging(settings.log_level)
    ctx.obj = settings


for module in (database, rules, orders, topics, processes, send, queries, ops, outbox, notifications, tokens, dev):
    for command in module.COMMANDS:
        main.add_command(command)
