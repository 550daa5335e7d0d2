"""Which failures are outages (pause, back off, retry the same work) and which are the message's fault."""

from __future__ import annotations

import asyncio

import asyncpg
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError, NodeNotReadyError, RequestTimedOutError

from service.adapters.errors import Unavailable

_TRANSIENT_KAFKA = (KafkaConnectionError, KafkaTimeoutError, NodeNotReadyError, RequestTimedOutError)
_POSTGRES_OUTAGES = (
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
)


def dependency_of(exc: BaseException) -> str | None:
    """The dependency whose outage `exc` is (postgres, kafka, smtp, rules, network), None when it is no outage."""
    if isinstance(exc, Unavailable):
        return exc.dependency
    if isinstance(exc, _POSTGRES_OUTAGES):
        return "postgres"
    if isinstance(exc, _TRANSIENT_KAFKA) or (isinstance(exc, KafkaError) and getattr(exc, "retriable", False)):
        return "kafka"
    if isinstance(exc, (OSError, asyncio.TimeoutError, ConnectionError)):
        return "network"
    return None


def is_timeout(exc: BaseException) -> bool:
    """The server cancelled a statement (statement_timeout) or gave up a lock wait (lock_timeout).

    Not an outage: the connection is fine, and a statement that times out on its own may time out
    for ever; the caller decides how often to try it again."""
    return isinstance(exc, (asyncpg.exceptions.QueryCanceledError, asyncpg.exceptions.LockNotAvailableError))


class StatementTimedOut(Unavailable):
    """A timeout where no message can be at fault (the notifier's lookups by key): wait like an outage."""

    dependency = "postgres"


def is_outage(exc: BaseException) -> bool:
    """True for infrastructure trouble that will pass: lost connections, timeouts, servers going away,
    and dependencies that say they cannot serve yet (SMTP 4xx, no rules loaded)."""
    return dependency_of(exc) is not None
