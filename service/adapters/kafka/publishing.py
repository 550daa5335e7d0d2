"""Publishing stored messages with acknowledgement (acks=all)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence

from aiokafka.partitioner import murmur2

from service.adapters.postgres.outbox import StoredMessage

SENT = "sent"


async def publish_all(producer, messages: Sequence[StoredMessage]) -> None:
    """Send messages in order and wait until the broker acknowledged every one; the first failure raises."""
    futures = [await producer.send(m.topic, value=m.value, key=m.key, headers=m.headers) for m in messages]
    await asyncio.gather(*futures)


async def publish_each(producer, messages: Sequence[StoredMessage],
                       is_outage: Callable[[BaseException], bool]) -> list[str | BaseException | None]:
    """Send messages in order and report each one: SENT once acknowledged, the exception that refused
    it, or None when it was not sent (an outage stopped the round, or an earlier message of the same
    topic and key was refused: it must not be overtaken)."""
    results: list[str | BaseException | None] = [None] * len(messages)
    pending: list[tuple[int, asyncio.Future]] = []
    refused_keys: set[tuple[str, bytes]] = set()
    for index, m in enumerate(messages):
        if m.key is not None and (m.topic, m.key) in refused_keys:
            continue
        try:
            pending.append((index, await producer.send(m.topic, value=m.value, key=m.key, headers=m.headers)))
        except Exception as exc:  # refused before it left: too large, bad headers, unknown topic …
            results[index] = exc
            if is_outage(exc):
                break
            if m.key is not None:
                refused_keys.add((m.topic, m.key))
    acks = await asyncio.gather(*(future for _, future in pending), return_exceptions=True)
    for (index, _), ack in zip(pending, acks):
        results[index] = ack if isinstance(ack, BaseException) else SENT
    return results


@functools.lru_cache(maxsize=65_536)
def partition_of(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2, as in the Java client and aiokafka) gives `key`
    on a topic of `partitions` partitions."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions
