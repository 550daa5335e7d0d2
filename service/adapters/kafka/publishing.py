"""Publishing stored messages with acknowledgement (acks=all)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence

from aiokafka.errors import MessageSizeTooLargeError, OutOfOrderSequenceNumber
from aiokafka.partitioner import murmur2
from aiokafka.producer.transaction_manager import NO_PRODUCER_EPOCH, NO_PRODUCER_ID, PidAndEpoch

from service.domain.outbox import HeldLines, StoredMessage

SENT = "sent"


async def publish_all(producer, messages: Sequence[StoredMessage]) -> None:
    """Send messages in order and wait until the broker acknowledged every one; the first failure raises."""
    futures = [await producer.send(m.topic, value=m.value, key=m.key, headers=m.headers) for m in messages]
    await asyncio.gather(*futures)


async def publish_each(producer, messages: Sequence[StoredMessage],
                       is_outage: Callable[[BaseException], bool]) -> list[str | BaseException | None]:
    """Send messages in order and report each one: SENT once acknowledged, the exception that refused
    it, or None when it was not sent (an outage stopped the round, or an earlier message of its line was
    refused: it holds back the later ones, `service.domain.outbox`)."""
    results: list[str | BaseException | None] = [None] * len(messages)
    pending: list[tuple[int, asyncio.Future]] = []
    refused = HeldLines()
    for index, m in enumerate(messages):
        if refused.behind(m) is not None:
            continue
        try:
            pending.append((index, await producer.send(m.topic, value=m.value, key=m.key, headers=m.headers)))
        except Exception as exc:  # refused before it left: too large, bad headers, unknown topic …
            results[index] = exc
            if is_outage(exc):
                break
            refused.refuse(m)
    acks = await asyncio.gather(*(future for _, future in pending), return_exceptions=True)
    for (index, _), ack in zip(pending, acks):
        results[index] = ack if isinstance(ack, BaseException) else SENT
    refused_with_their_batch = [index for index, _ in pending if isinstance(results[index], _NOT_THE_MESSAGES_FAULT)]
    await _resend_alone(producer, messages, results, refused_with_their_batch, is_outage)
    return results


async def _resend_alone(producer, messages: Sequence[StoredMessage], results: list, again: list[int],
                        is_outage) -> None:
    """The broker refuses a whole record batch over the topic's `max.message.bytes` (MESSAGE_TOO_LARGE from the
    broker; the producer's own `max_request_size` check refuses before sending), with every message in it:
    messages of other keys that fit on their own, or small ones too large only together. And an idempotent
    producer's sequence has a gap after any refused batch: every later batch to that partition is refused
    as OUT_OF_ORDER_SEQUENCE_NUMBER. So after such refusals the producer takes a new producer id (sequences
    start again) and each refused message is sent again on its own, in order: only one too large by itself
    stays refused, and the later messages of its line are left unsent behind it."""
    if again:
        renew_producer_id(producer)
    refused = HeldLines()
    for position, index in enumerate(again):
        m = messages[index]
        if refused.behind(m) is not None:
            results[index] = None
            continue
        try:
            await (await producer.send(m.topic, value=m.value, key=m.key, headers=m.headers))
            results[index] = SENT
        except Exception as exc:
            results[index] = exc
            if is_outage(exc):
                for later in again[position + 1:]:
                    results[later] = None
                return
            renew_producer_id(producer)  # refused again: its sequence has a gap again
            refused.refuse(m)


# refusals of a record batch, not of each message in it (see `_resend_alone`)
_NOT_THE_MESSAGES_FAULT = (MessageSizeTooLargeError, OutOfOrderSequenceNumber)


def renew_producer_id(producer) -> None:
    """Make an idempotent producer ask the broker for a new producer id before it sends again, its sequences
    starting at 0, as the Java producer bumps its epoch after a refused batch (KIP-360). aiokafka has no call
    for it: this resets its transaction manager's id, the one private state it needs (no-op for a
    producer that is not idempotent, or transactional)."""
    manager = getattr(producer, "_txn_manager", None)
    if manager is None or manager.transactional_id is not None or not manager.has_pid():
        return
    manager._pid_and_epoch = PidAndEpoch(NO_PRODUCER_ID, NO_PRODUCER_EPOCH)
    manager._pid_waiter = asyncio.get_running_loop().create_future()
    manager._sequence_numbers.clear()


@functools.lru_cache(maxsize=65_536)
def partition_of(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2, as in the Java client and aiokafka) gives `key`
    on a topic of `partitions` partitions."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions
