"""Which asyncpg errors are a Postgres outage (wait, back off, retry the same work) and which are a statement
that timed out (the caller decides how often to try it again). The runtime asks through `runtime/faults.py`."""

from __future__ import annotations

import asyncpg

_OUTAGES = (
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.InterfaceError,  # connection closed / pool closing mid-operation
    # seen while the server shuts down: the client refuses a new operation on a connection whose
    # last one never finished; nothing was sent, and the pool replaces the connection on release
    asyncpg.exceptions.InternalClientError,
    # a write on a primary demoted or fenced by a failover (issue 24): the connection is dropped (see
    # connection.py) and the retry reconnects to the host that accepts writes
    asyncpg.exceptions.ReadOnlySQLTransactionError,
)


def outage_of(exc: BaseException) -> str | None:
    """"postgres" when `exc` is an outage of the database, else None."""
    return "postgres" if isinstance(exc, _OUTAGES) else None


def is_timeout(exc: BaseException) -> bool:
    """The server cancelled a statement (statement_timeout) or gave up a lock wait (lock_timeout).

    Not an outage: the connection is fine, and a statement that times out on its own may time out
    for ever; the caller decides how often to try it again."""
    return isinstance(exc, (asyncpg.exceptions.QueryCanceledError, asyncpg.exceptions.LockNotAvailableError))
