"""`orderstatus dev [--demo]`: the embedded default."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command()
@click.option("--demo", is_flag=True, help="Also send a scripted command per rule and print the outcomes.")
@click.option("--data-dir", type=click.Path(file_okay=False), default=".orderstatus-dev", show_default=True)
@click.option("--actor-auth", type=click.Choice(["off", "optional", "required"]), default="off", show_default=True,
              help="ORDERSTATUS_ACTOR_AUTH for the worker (a dev key pair is made either way).")
def dev(demo: bool, data_dir: str, actor_auth: str) -> None:
    """Run everything on this machine with no Docker: Postgres, broker, SMTP sink, worker, notifier."""
    # deferred: the embedded infrastructure is a dev tool, never loaded by the production commands
    from service.entrypoints.dev import run_dev

    sys.exit(run_dev(Path(data_dir), demo=demo, actor_auth=actor_auth))


COMMANDS = [dev]
