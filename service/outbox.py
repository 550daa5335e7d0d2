"""The transactional outbox: every message the service emits is written in the deciding transaction
and published afterwards by the relay, at least once and in id order (DESIGN §7.4)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from uuid import UUID

import asyncpg
import structlog

# one relay at a time publishes, so two workers can never reorder one order's events
RELAY_LOCK_KEY = 0x6F7574626F78  # "outbox"

log = structlog.get_logger("orderstatus.outbox")


@dataclass(frozen=True)
class OutboxMessage:
    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    event_id: UUID | None = None
    event_type: str | None = None
    order_id: int | None = None


async def insert_outbox(conn: asyncpg.Connection, messages: list[OutboxMessage]) -> None:
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


def _headers(stored) -> list[tuple[str, bytes]]:
    return [(name, bytes.fromhex(value)) for name, value in stored]


async def publish_rows(producer, rows) -> None:
    """Send rows in order and wait until the broker acknowledged every one (acks=all)."""
    futures = [
        await producer.send(
            row["topic"], value=bytes(row["payload"]), key=row["message_key"], headers=_headers(row["headers"])
        )
        for row in rows
    ]
    await asyncio.gather(*futures)


class OutboxRelay:
    """Publishes unpublished outbox rows in id order; marks them published only after the acks."""

    def __init__(self, pool: asyncpg.Pool, producer, *, batch_size: int = 1000, metrics=None) -> None:
        self.pool = pool
        self.producer = producer
        self.batch_size = batch_size
        self.metrics = metrics
        self.wakeup = asyncio.Event()

    async def publish_pending(self) -> int | None:
        """Publish one batch; returns how many were published, or None when another relay holds the lock."""
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", RELAY_LOCK_KEY):
                    return None
                rows = await conn.fetch(
                    """
                    SELECT id, topic, message_key, payload, headers FROM outbox
                     WHERE published_at IS NULL ORDER BY id LIMIT $1
                    """,
                    self.batch_size,
                )
                if not rows:
                    return 0
                await publish_rows(self.producer, rows)
                await conn.execute(
                    "UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])", [r["id"] for r in rows]
                )
        if self.metrics is not None:
            self.metrics.published.labels(self.metrics.service).inc(len(rows))
        return len(rows)

    async def drain(self) -> None:
        """Publish until nothing is left (or another relay is doing it)."""
        while True:
            published = await self.publish_pending()
            if not published or published < self.batch_size:
                return

    async def run(self, stop: asyncio.Event, retrying_factory, poll_interval: float = 0.2,
                  error_backoff: float = 5.0) -> None:
        """Loop until `stop`: wake on local commits, otherwise poll for rows other processes left.

        Outages are retried with backoff; any other failure (a row the broker refuses for good) is
        logged and retried after `error_backoff`, so the relay never dies and never skips a row."""
        while not stop.is_set():
            try:
                await asyncio.wait_for(self.wakeup.wait(), poll_interval)
            except asyncio.TimeoutError:
                pass
            self.wakeup.clear()
            try:
                async for attempt in retrying_factory("outbox"):
                    with attempt:
                        while True:
                            published = await self.publish_pending()
                            # None: another relay holds the lock and publishes every pending row, ours too
                            if published is None or published < self.batch_size:
                                break
            except Exception as exc:
                log.error("outbox publish failed; retrying", error=repr(exc))
                try:
                    await asyncio.wait_for(stop.wait(), error_backoff)
                except asyncio.TimeoutError:
                    pass
