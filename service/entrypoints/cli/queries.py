"""`orderstatus transitions` and `orderstatus history`: the read side on the command line."""

from __future__ import annotations

import click

from service.domain.model import ROLES, Actor
from service.entrypoints.cli.common import UserError, print_json, with_conn
from service.adapters.postgres import views
from service.runtime.settings import Settings


@click.command()
@click.argument("order_id", type=int)
@click.option("--role", required=True, type=click.Choice(ROLES))
@click.option("--client-id", default=None)
@click.pass_obj
def transitions(settings: Settings, order_id: int, role: str, client_id: str | None) -> None:
    """Print the statuses an actor can move the order to (R13) as JSON."""
    found = with_conn(settings, lambda conn: views.transitions(conn, order_id, Actor("cli", role, client_id)))
    if found is None:
        raise UserError(f"order {order_id} not found")
    print_json(found)


@click.command()
@click.argument("order_id", type=int)
@click.pass_obj
def history(settings: Settings, order_id: int) -> None:
    """Print the order's status changes and notes as JSON."""
    found = with_conn(settings, lambda conn: views.history(conn, order_id))
    if found is None:
        raise UserError(f"order {order_id} not found")
    print_json(found)


COMMANDS = [transitions, history]
