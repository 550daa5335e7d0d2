"""`orderstatus republish`: publish stored events again, byte for byte (same event ids), in their
original order, for downstream rebuilds."""

from __future__ import annotations

from datetime import datetime

from service.adapters.kafka.publishing import publish_all
from service.adapters.postgres.outbox_events import events_since


async def republish(conn, producer, events_topic: str, since: datetime, order_id: int | None) -> int:
    messages = await events_since(conn, events_topic, since, order_id)
    if messages:
        await publish_all(producer, messages)
    return len(messages)
