"""`orderstatus migrate`."""

from __future__ import annotations

import click

from service.adapters.postgres.connection import migrate as run_migrations
from service.entrypoints.cli.common import UserError
from service.runtime.settings import Settings


@click.command()
@click.pass_obj
def migrate(settings: Settings) -> None:
    """Apply the database migrations (safe to run concurrently and repeatedly)."""
    try:
        run_migrations(settings.database_url.get_secret_value())
    except Exception as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        raise UserError(f"migration failed: {exc.__class__.__name__}: {first_line}") from None
    click.echo("database is up to date", err=True)


COMMANDS = [migrate]
