"""Which failures are outages (pause, back off, retry the same work) and which are the message's fault.

Each adapter says which of its own errors are outages and timeouts (`adapters/postgres/faults.py`,
`adapters/kafka/faults.py`: `outage_of` and `is_timeout`, a neutral interface on any exception); the runtime
asks them in turn and adds what is no driver's: an adapter's `Unavailable` and the network errors of the
standard library. So the runtime imports no driver."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import NamedTuple

from service.adapters.errors import Unavailable
from service.adapters.kafka import faults as kafka
from service.adapters.postgres import faults as postgres


class FaultClassifier(NamedTuple):
    """An adapter's answers: the dependency whose outage an exception is (None: none of its own), and whether it
    is a timeout of a statement or lock wait."""

    outage_of: Callable[[BaseException], str | None]
    is_timeout: Callable[[BaseException], bool]


CLASSIFIERS: tuple[FaultClassifier, ...] = (
    FaultClassifier(postgres.outage_of, postgres.is_timeout),
    FaultClassifier(kafka.outage_of, kafka.is_timeout),
)


def dependency_of(exc: BaseException) -> str | None:
    """The dependency whose outage `exc` is (postgres, kafka, smtp, rules, network), None when it is no outage."""
    if isinstance(exc, Unavailable):
        return exc.dependency
    for classifier in CLASSIFIERS:
        dependency = classifier.outage_of(exc)
        if dependency is not None:
            return dependency
    if isinstance(exc, (OSError, asyncio.TimeoutError, ConnectionError)):
        return "network"
    return None


def is_timeout(exc: BaseException) -> bool:
    """The server cancelled a statement (statement_timeout) or gave up a lock wait (lock_timeout).

    Not an outage: the connection is fine, and a statement that times out on its own may time out
    for ever; the caller decides how often to try it again."""
    return any(classifier.is_timeout(exc) for classifier in CLASSIFIERS)


class StatementTimedOut(Unavailable):
    """A timeout where no message can be at fault (the notifier's lookups by key): wait like an outage."""

    dependency = "postgres"


def is_outage(exc: BaseException) -> bool:
    """True for infrastructure trouble that will pass: lost connections, timeouts, servers going away,
    and dependencies that say they cannot serve yet (SMTP 4xx, no rules loaded)."""
    return dependency_of(exc) is not None
