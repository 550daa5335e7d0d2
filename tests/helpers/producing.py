"""The one producer helper: put commands, events or raw bytes on a topic, keyed as the real producers key them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.structs import RecordMetadata
from pydantic import BaseModel

from service.contract.events import event_json
from service.contract.keys import message_key
from service.runtime.settings import Settings

RAW_KEY = b"garbage"  # the key of a message given as raw bytes (or a tombstone)


def encode(message) -> tuple[bytes, bytes | None]:
    """(key, value) of a message.

    A dict (a command) becomes JSON and an event model its wire JSON; either is keyed by its order id
    when it has one (a ChangeOrderStatus, a per-order event), else by its command id (an override
    batch, a batch summary), like `orderstatus send` and the worker. Bytes and None (a tombstone)
    go as they are."""
    if message is None or isinstance(message, (bytes, bytearray)):
        return RAW_KEY, None if message is None else bytes(message)
    if isinstance(message, BaseModel):
        value, fields = event_json(message), message.model_dump()
    else:
        value, fields = json.dumps(message).encode(), message
    return message_key(fields.get("order_id"), fields.get("command_id")), value


class Producer:
    """A started producer (acks=all) for the duration of an `async with`."""

    def __init__(self, settings: Settings) -> None:
        self._producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")

    async def __aenter__(self) -> "Producer":
        await self._producer.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self._producer.stop()

    async def send(self, topic: str, messages: Sequence, *, key: str | bytes | None = None,
                   headers: Sequence[tuple[str, bytes]] = (), separately: bool = False) -> list[RecordMetadata]:
        """Send in order and wait for every acknowledgement. `key` overrides every message's key;
        `separately` waits for each message before sending the next (one record per broker batch)."""
        forced = key.encode() if isinstance(key, str) else key
        futures = []
        for message in messages:
            message_key, value = encode(message)
            future = await self._producer.send(topic, value=value, key=forced or message_key,
                                               headers=list(headers) or None)
            if separately:
                await future
            futures.append(future)
        await self._producer.flush()
        return list(await asyncio.gather(*futures))


async def produce(settings: Settings, messages: Sequence, topic: str | None = None, *,
                  key: str | bytes | None = None, headers: Sequence[tuple[str, bytes]] = (),
                  separately: bool = False) -> list[RecordMetadata]:
    """Publish messages (to the commands topic unless told otherwise); returns where each one landed."""
    async with Producer(settings) as producer:
        return await producer.send(topic or settings.commands_topic, messages, key=key, headers=headers,
                                   separately=separately)


async def stream(settings: Settings, messages: Sequence, topic: str | None = None, *, chunk: int,
                 gap: float) -> list[RecordMetadata]:
    """Publish like `produce`, `chunk` messages at a time with a pause of `gap` seconds between chunks,
    so a consumer sees a steady flow; returns where each message landed."""
    placed: list[RecordMetadata] = []
    async with Producer(settings) as producer:
        for start in range(0, len(messages), chunk):
            placed += await producer.send(topic or settings.commands_topic, messages[start:start + chunk])
            if gap:
                await asyncio.sleep(gap)
    return placed
