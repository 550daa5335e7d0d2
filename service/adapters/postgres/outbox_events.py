"""Stored events read back from the outbox, byte for byte: `orderstatus republish` and
`orderstatus notifications resend`."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from service.adapters.postgres.outbox import stored_message
from service.domain.outbox import StoredMessage


async def events_since(pool_or_conn, topic: str, since: datetime, order_id: int | None) -> list[StoredMessage]:
    """Stored events on `topic` created at or after `since` (one order's, when given), in id order."""
    rows = await pool_or_conn.fetch(
        """
        SELECT id, shard, topic, message_key, payload, headers FROM outbox
         WHERE topic = $1 AND created_at >= $2 AND ($3::bigint IS NULL OR order_id = $3)
         ORDER BY id
        """,
        topic, since, order_id,
    )
    return [stored_message(r) for r in rows]


async def stored_event(pool_or_conn, event_id: UUID) -> bytes | None:
    """The exact event JSON the worker published."""
    return await pool_or_conn.fetchval(
        "SELECT payload FROM outbox WHERE event_id = $1 AND payload IS NOT NULL ORDER BY id LIMIT 1", event_id
    )
