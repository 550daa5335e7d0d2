"""Which failures are outages (pause, back off, retry the same work) and which are the message's fault."""

from __future__ import annotations

import asyncio

import asyncpg
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError, NodeNotReadyError, RequestTimedOutError
from tenacity import AsyncRetrying, retry_if_exception, stop_never, wait_exponential_jitter

_TRANSIENT_KAFKA = (KafkaConnectionError, KafkaTimeoutError, NodeNotReadyError, RequestTimedOutError)


def is_outage(exc: BaseException) -> bool:
    """True for infrastructure trouble that will pass: lost connections, timeouts, servers going away."""
    if isinstance(exc, (OSError, asyncio.TimeoutError, ConnectionError)):
        return True
    if isinstance(exc, asyncpg.exceptions.InterfaceError):  # connection closed / pool closing mid-operation
        return True
    if isinstance(exc, asyncpg.exceptions.InternalClientError):
        # seen while the server shuts down: the client refuses a new operation on a connection whose
        # last one never finished; nothing was sent, and the pool replaces the connection on release
        return True
    if isinstance(
        exc,
        (
            asyncpg.exceptions.PostgresConnectionError,
            asyncpg.exceptions.CannotConnectNowError,
            asyncpg.exceptions.AdminShutdownError,
            asyncpg.exceptions.CrashShutdownError,
            asyncpg.exceptions.TooManyConnectionsError,
            asyncpg.exceptions.SerializationError,
            asyncpg.exceptions.DeadlockDetectedError,
            asyncpg.exceptions.QueryCanceledError,
        ),
    ):
        return True
    if isinstance(exc, _TRANSIENT_KAFKA):
        return True
    if isinstance(exc, KafkaError) and getattr(exc, "retriable", False):
        return True
    return False


def outage_retrying(initial: float, maximum: float, on_retry=None) -> AsyncRetrying:
    """Retry forever with jittered exponential backoff while the failure is an outage."""
    return AsyncRetrying(
        retry=retry_if_exception(is_outage),
        wait=wait_exponential_jitter(multiplier=initial, max=maximum, jitter=initial),
        stop=stop_never,
        reraise=True,
        before_sleep=on_retry,
    )
