"""`orderstatus worker` and `orderstatus notifier`: the long-running processes, until SIGTERM/SIGINT."""

from __future__ import annotations

import sys

import click

from service.entrypoints.cli.common import UserError
from service.entrypoints.services import run_gateway, run_notifier, run_worker
from service.runtime.auth import AuthConfigError
from service.runtime.settings import Settings
from service.runtime.signals import run_until_signalled


@click.command()
@click.pass_obj
def worker(settings: Settings) -> None:
    """Run the command worker until SIGTERM/SIGINT."""
    sys.exit(run_until_signalled(run_worker, settings))


@click.command()
@click.pass_obj
def notifier(settings: Settings) -> None:
    """Run the notifier (OrderStatusChanged events to emails) until SIGTERM/SIGINT."""
    sys.exit(run_until_signalled(run_notifier, settings))


@click.command()
@click.pass_obj
def gateway(settings: Settings) -> None:
    """Run the gateway (the seed APIs over HTTP, DESIGN §11) until SIGTERM/SIGINT."""
    try:
        sys.exit(run_until_signalled(run_gateway, settings))
    except AuthConfigError as exc:  # every request needs a token: no keys, no gateway
        raise UserError(f"the gateway cannot start: {exc}") from None


COMMANDS = [worker, notifier, gateway]
