"""What every command module shares: one-line errors, running a coroutine, one-shot connections."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from datetime import datetime, timezone
from pathlib import Path

import asyncpg
import click
from aiokafka.errors import KafkaConnectionError, KafkaError

from service.adapters.errors import AccessRefused, TopicMissing
from service.adapters.kafka.clients import make_producer
from service.adapters.postgres.connection import connect
from service.runtime.settings import Settings


class UserError(click.ClickException):
    """A mistake of the caller: one line, exit code 1, no traceback."""


def run(coro):
    """Run a one-shot command's coroutine; a failure of a service becomes one line on stderr."""
    # aiokafka's own connection errors would repeat the one line we print
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        return asyncio.run(coro)
    except (OSError, asyncio.TimeoutError) as exc:
        raise UserError(f"cannot reach a service: {exc}") from None
    except (KafkaConnectionError, asyncpg.exceptions.CannotConnectNowError) as exc:
        raise UserError(f"cannot reach a service: {exc}") from None
    except asyncpg.exceptions.ClientConfigurationError as exc:
        # a bad ORDERSTATUS_DATABASE_URL parameter, e.g. an unknown sslmode or a missing sslrootcert file
        raise UserError(f"database connection settings: {exc}") from None
    except asyncpg.exceptions.UndefinedTableError as exc:
        raise UserError(f"the database is not migrated ({exc}); run `orderstatus migrate`") from None
    except (TopicMissing, AccessRefused) as exc:  # AccessRefused: a wrong password or CA, a missing ACL
        raise UserError(str(exc)) from None
    except (KafkaError, asyncpg.PostgresError) as exc:
        first_line = (str(exc).splitlines() or [""])[0]  # Postgres appends DETAIL/HINT lines
        raise UserError(f"{type(exc).__name__}: {first_line}") from None


def with_conn(settings: Settings, work):
    """Run `work(conn)` on one short-lived connection and return its result."""

    async def go():
        conn = await connect(settings.database_url.get_secret_value())
        try:
            return await work(conn)
        finally:
            await conn.close()

    return run(go())


async def with_producer(settings: Settings, work):
    """Await `work(producer)` with a started producer, closed afterwards even when its start failed."""
    producer = make_producer(settings)
    try:
        await producer.start()
        return await work(producer)
    finally:
        await producer.stop()


def print_json(data) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def parse_datetime(value: str, what: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise UserError(f"{what}: not an ISO-8601 date-time: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def read_text(file: str) -> str:
    """A file's text, or stdin for `-`."""
    try:
        return sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {file}: {getattr(exc, 'strerror', None) or exc}") from None
