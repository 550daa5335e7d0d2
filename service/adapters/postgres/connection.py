"""Postgres connections and migrations. Only entrypoints call these.

Every connection, the migrations' included, is opened by asyncpg from the DSN itself, so its TLS
parameters (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`, ...) mean the same everywhere."""

from __future__ import annotations

import asyncio
import functools
import os
import weakref
from pathlib import Path
from urllib.parse import parse_qs, urlsplit, urlunsplit

import asyncpg
import pydantic_core

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def _check_tls_files(database_url: str) -> None:
    """A TLS file named in the DSN that cannot be read is a settings mistake: say which, by name (asyncpg
    would raise a bare FileNotFoundError that reads like an unreachable server)."""
    query = parse_qs(urlsplit(database_url).query)
    for param in ("sslrootcert", "sslcert", "sslkey"):
        for path in query.get(param, []):
            if path != "system" and not os.access(path, os.R_OK):
                raise asyncpg.exceptions.ClientConfigurationError(
                    f'{param} file "{path}" does not exist or cannot be read')


def _json_text(value) -> str:
    return pydantic_core.to_json(value).decode()


async def _init_connection(conn: asyncpg.Connection) -> None:
    # pydantic-core's JSON (Rust) over the standard library's: the relay decodes every outbox row's headers
    for name in ("json", "jsonb"):
        await conn.set_type_codec(name, encoder=_json_text, decoder=pydantic_core.from_json, schema="pg_catalog")
    conn.add_query_logger(functools.partial(_drop_if_read_only, weakref.ref(conn)))


class DemotedPrimary(asyncpg.exceptions.InternalClientError):
    """The server of this connection no longer accepts writes (a standby, or a primary that was demoted or
    fenced after a failover): an outage to wait out, on a connection to the new primary."""


def _drop_if_read_only(conn_ref: weakref.ref, query) -> None:
    """A write refused because the server became read-only (a demoted or fenced primary after a failover,
    issue 24): close the connection, so the pool opens a new one, which `target_session_attrs=read-write`
    sends to the server that accepts writes. The caller sees ReadOnlySQLTransactionError (an outage, retried)
    and nothing was written on the old primary."""
    if isinstance(query.exception, asyncpg.exceptions.ReadOnlySQLTransactionError):
        conn = conn_ref()
        if conn is not None and not conn.is_closed():
            conn.terminate()


def server_of(conn: asyncpg.Connection) -> str:
    """`host:port` this connection was opened to (of the URL's hosts, the one that accepted it). asyncpg
    keeps it only in a private attribute: read here, in one place."""
    address = getattr(conn, "_addr", None)
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return str(address) if address else "unknown"


async def writable_server(conn: asyncpg.Connection) -> str:
    """The connection's server, when it accepts writes; raises DemotedPrimary when it does not (a standby,
    or a fenced primary): what readiness asks of the database."""
    if await conn.fetchval("SELECT pg_is_in_recovery() OR current_setting('transaction_read_only') = 'on'"):
        server = server_of(conn)
        conn.terminate()  # the pool opens its next connection to the host that accepts writes
        raise DemotedPrimary(f"{server} does not accept writes (a standby or a demoted primary)")
    return server_of(conn)


async def _warm_connection(conn: asyncpg.Connection) -> None:
    """A pooled connection learns the array types the set-based writes send now, not on its first batch:
    asyncpg looks each one up per connection (a query of ~10 ms each), and a burst after a quiet spell
    spreads over every connection of the pool at once."""
    await _init_connection(conn)
    await conn.fetch("SELECT $1::bigint[], $2::bool[], $3::bytea[], $4::int[], $5::jsonb[], $6::text[], "
                     "$7::timestamptz[], $8::uuid[]", *([[]] * 8))


async def _keep_session(conn: asyncpg.Connection) -> None:
    """The pool's reset on release, instead of asyncpg's default query (unlock every advisory lock, close
    cursors, unlisten, reset every setting): a round trip per release, for state this service never
    leaves in a session — its locks and settings are all transaction-scoped. asyncpg still rolls back a
    transaction left open before calling this."""


async def create_pool(database_url: str, *, size: int = 4, statement_timeout_s: float | None = None,
                      lock_timeout_s: float | None = None) -> asyncpg.Pool:
    """A pool whose sessions carry the server-side statement and lock timeouts. The client-side
    command timeout is longer, so the server cancels a slow statement first (a QueryCanceledError
    the caller can tell from a lost connection)."""
    server_settings = {}
    if statement_timeout_s is not None:
        server_settings["statement_timeout"] = str(int(statement_timeout_s * 1000))
    if lock_timeout_s is not None:
        server_settings["lock_timeout"] = str(int(lock_timeout_s * 1000))
    _check_tls_files(database_url)
    # every connection open from the start and kept while idle (asyncpg closes idle ones after 5 min by
    # default): the first burst after a quiet spell would otherwise wait for connections and lookups
    return await asyncpg.create_pool(
        database_url, min_size=size, max_size=size, max_inactive_connection_lifetime=0, init=_warm_connection,
        reset=_keep_session, server_settings=server_settings,
        command_timeout=max(60.0, (statement_timeout_s or 0) + 30),
    )


async def connect(database_url: str) -> asyncpg.Connection:
    _check_tls_files(database_url)
    conn = await asyncpg.connect(database_url, command_timeout=60)
    await _init_connection(conn)
    return conn


async def ensure_database(database_url: str) -> None:
    """Create the target database when it is missing (first run on a fresh server)."""
    _check_tls_files(database_url)
    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    if not name or name == "postgres":
        return
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    conn = await asyncpg.connect(admin_url)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            try:
                await conn.execute(f'CREATE DATABASE "{name}"')
            except (asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
                pass  # a concurrent migrate created it first
    finally:
        await conn.close()


def migrate(database_url: str) -> None:
    """Apply every pending migration; safe to run repeatedly and from several processes at once."""
    from alembic import command
    from alembic.config import Config

    asyncio.run(ensure_database(database_url))
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # handed to env.py in memory, never as `sqlalchemy.url`: SQLAlchemy's asyncpg dialect would turn the
    # DSN's query (sslmode, sslrootcert) into connect() keywords asyncpg does not take
    config.attributes["database_url"] = database_url
    command.upgrade(config, "head")
