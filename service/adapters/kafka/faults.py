"""Which aiokafka errors are a Kafka outage (wait, back off, retry the same work). The runtime asks through
`runtime/faults.py`. A Kafka client never reports a statement timeout, so there is no `is_timeout` here."""

from __future__ import annotations

from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError, NodeNotReadyError, RequestTimedOutError

_TRANSIENT = (KafkaConnectionError, KafkaTimeoutError, NodeNotReadyError, RequestTimedOutError)


def outage_of(exc: BaseException) -> str | None:
    """"kafka" when `exc` is a transient broker failure (aiokafka's `retriable` ones included), else None."""
    if isinstance(exc, _TRANSIENT) or (isinstance(exc, KafkaError) and getattr(exc, "retriable", False)):
        return "kafka"
    return None


def is_timeout(exc: BaseException) -> bool:
    return False
