"""Which failures pause the work (outages) and which are a message's own fault."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, MessageSizeTooLargeError, NodeNotReadyError

from service.adapters.errors import KafkaRefused
from service.runtime.faults import is_outage


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError(111, "refused"),
        OSError("network unreachable"),
        asyncio.TimeoutError(),
        asyncpg.exceptions.CannotConnectNowError("the database system is shutting down"),
        asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.exceptions.InterfaceError("pool is closing"),
        asyncpg.exceptions.InternalClientError("cannot switch to state 12; another operation (2) is in progress"),
        asyncpg.exceptions.SerializationError("could not serialize access"),
        asyncpg.exceptions.DeadlockDetectedError("deadlock detected"),
        KafkaConnectionError("broker down"),
        KafkaTimeoutError(),
        NodeNotReadyError(),
    ],
    ids=lambda e: type(e).__name__,
)
def test_outages_pause_the_work(exc):
    """Infrastructure trouble is an outage: the same work is retried, nothing is dead-lettered."""
    assert is_outage(exc)


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("bad data"),
        KeyError("missing"),
        asyncpg.exceptions.NumericValueOutOfRangeError("numeric field overflow"),
        asyncpg.exceptions.UniqueViolationError("duplicate key"),
        MessageSizeTooLargeError(),
        KafkaRefused("Kafka refused user 'worker' access to topic t: not authorised"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_everything_else_is_not_an_outage(exc):
    """A failure caused by the data itself is not retried as an outage (it would never pass)."""
    assert not is_outage(exc)
