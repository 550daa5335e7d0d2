"""Alembic environment: runs the SQL revisions over asyncpg, serialised by an advisory lock."""

from __future__ import annotations

import asyncio

import asyncpg
from alembic import context
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

# Two `orderstatus migrate` started together: the second waits here, then finds nothing to do.
MIGRATION_LOCK_KEY = 0x6F7264657273  # "orders"


def _run(connection) -> None:
    context.configure(connection=connection, target_metadata=None, transactional_ddl=True)
    with context.begin_transaction():
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        context.run_migrations()


async def _main() -> None:
    # asyncpg parses the DSN itself (sslmode, sslrootcert, ...) exactly as the service's own pools do;
    # the engine's URL names only the dialect
    dsn = context.config.attributes["database_url"]
    engine = create_async_engine("postgresql+asyncpg://", async_creator=lambda: asyncpg.connect(dsn),
                                 poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


asyncio.run(_main())
