"""Publishing stored messages with acknowledgement (acks=all)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from service.adapters.postgres.outbox import StoredMessage


async def publish_all(producer, messages: Sequence[StoredMessage]) -> None:
    """Send messages in order and wait until the broker acknowledged every one."""
    futures = [
        await producer.send(m.topic, value=m.value, key=m.key, headers=m.headers)
        for m in messages
    ]
    await asyncio.gather(*futures)
