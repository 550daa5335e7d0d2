"""`orderstatus worker` and `orderstatus notifier`: the long-running processes, until SIGTERM/SIGINT."""

from __future__ import annotations

import sys

import click
import structlog

from service.adapters.errors import AccessRefused
from service.entrypoints.cli.common import UserError
from service.entrypoints.services import run_gateway, run_notifier, run_worker
from service.runtime.auth import AuthConfigError
from service.runtime.settings import Settings
from service.runtime.signals import run_until_signalled

log = structlog.get_logger("orderstatus.process")


def _run(run_service, settings: Settings, name: str) -> int:
    """Run a process until SIGTERM/SIGINT. Refused by a dependency (a wrong password or CA, a missing ACL) it
    stops with one error line and exit 1 instead of backing off for ever: no retry fixes that, and a pod that
    restarts with the reason in its log is what an operator looks for."""
    try:
        return run_until_signalled(run_service, settings)
    except AccessRefused as exc:
        log.error(f"{name} stopped: access refused", dependency=exc.dependency, error=str(exc))
        return 1


@click.command()
@click.pass_obj
def worker(settings: Settings) -> None:
    """Run the command worker until SIGTERM/SIGINT."""
    try:
        sys.exit(_run(run_worker, settings, "worker"))
    except AuthConfigError as exc:  # e.g. keys without ORDERSTATUS_AUTH_ISSUER/AUDIENCE: one line, exit 1
        raise UserError(f"the worker cannot start: {exc}") from None


@click.command()
@click.pass_obj
def notifier(settings: Settings) -> None:
    """Run the notifier (OrderStatusChanged events to emails) until SIGTERM/SIGINT."""
    sys.exit(_run(run_notifier, settings, "notifier"))


@click.command()
@click.pass_obj
def gateway(settings: Settings) -> None:
    """Run the gateway (the seed APIs over HTTP, DESIGN §11) until SIGTERM/SIGINT."""
    try:
        sys.exit(_run(run_gateway, settings, "gateway"))
    except AuthConfigError as exc:  # every request needs a token: no keys, no gateway
        raise UserError(f"the gateway cannot start: {exc}") from None


COMMANDS = [worker, notifier, gateway]
