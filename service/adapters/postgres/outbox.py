"""The `outbox` table: every message the service emits is written in the deciding transaction and
published afterwards by the relay, at least once and in id order (DESIGN §7.4)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from service.contract.events import WireMessage

# one relay at a time publishes, so two workers can never reorder one order's events
RELAY_LOCK_KEY = 0x6F7574626F78  # "outbox"


async def insert(conn, messages: Sequence[WireMessage]) -> None:
    """All rows in one statement (unnest keeps their order, so ids follow the list)."""
    if not messages:
        return
    await conn.execute(
        """
        INSERT INTO outbox (event_id, event_type, topic, message_key, payload, headers, order_id)
        SELECT event_id, event_type, topic, message_key, payload, headers::jsonb, order_id
          FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bytea[], $5::bytea[], $6::text[], $7::bigint[])
                 WITH ORDINALITY AS m(event_id, event_type, topic, message_key, payload, headers, order_id, n)
         ORDER BY n
        """,
        [m.event_id for m in messages],
        [m.event_type for m in messages],
        [m.topic for m in messages],
        [m.key for m in messages],
        [m.value for m in messages],
        # JSON text, as a list inside an array would read as a second dimension; hex keeps header bytes exact
        [json.dumps([[name, value.hex()] for name, value in m.headers]) for m in messages],
        [m.order_id for m in messages],
    )


@dataclass(frozen=True)
class StoredMessage:
    id: int
    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


def _stored(row) -> StoredMessage:
    headers = [(name, bytes.fromhex(value)) for name, value in row["headers"]]
    return StoredMessage(row["id"], row["topic"], row["message_key"], bytes(row["payload"]), headers)


@dataclass
class RelayBatch:
    rows: list[StoredMessage]
    _conn: object

    async def mark_published(self) -> None:
        await self._conn.execute(
            "UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])", [r.id for r in self.rows]
        )


@contextlib.asynccontextmanager
async def unpublished(pool, limit: int) -> AsyncIterator[RelayBatch | None]:
    """The oldest unpublished rows, under the relay lock, in one transaction (None: another relay holds
    the lock). What `mark_published` wrote commits when the block exits without an error."""
    async with pool.acquire() as conn:
        async with conn.transaction():
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", RELAY_LOCK_KEY):
                yield None
                return
            rows = await conn.fetch(
                "SELECT id, topic, message_key, payload, headers FROM outbox WHERE published_at IS NULL "
                "ORDER BY id LIMIT $1",
                limit,
            )
            yield RelayBatch([_stored(r) for r in rows], conn)


async def events_since(pool_or_conn, topic: str, since: datetime, order_id: int | None) -> list[StoredMessage]:
    """Stored events on `topic` created at or after `since` (one order's, when given), in id order."""
    rows = await pool_or_conn.fetch(
        """
        SELECT id, topic, message_key, payload, headers FROM outbox
         WHERE topic = $1 AND created_at >= $2 AND ($3::bigint IS NULL OR order_id = $3)
         ORDER BY id
        """,
        topic, since, order_id,
    )
    return [_stored(r) for r in rows]


async def stored_event(pool_or_conn, event_id: UUID) -> bytes | None:
    """The exact event JSON the worker published."""
    return await pool_or_conn.fetchval(
        "SELECT payload FROM outbox WHERE event_id = $1 AND payload IS NOT NULL ORDER BY id LIMIT 1", event_id
    )
