"""The `outbox` table: every message the service emits is written in the deciding transaction and
published afterwards by the relay, at least once and in id order (DESIGN §7.4).

A row the broker refuses for good is parked (`parked_at`, `park_reason`): the relay skips it and holds
back the later rows of the same topic and key until an operator retries it."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from service.contract.events import WireMessage

# the first half of the relay's two-part advisory lock (the second is the shard): one relay per shard at
# a time, so two workers can never reorder one order's events
RELAY_LOCK_CLASS = 0x6F757462  # "outb"


async def insert(conn, messages: Sequence[WireMessage]) -> None:
    """All rows in one statement (unnest keeps their order, so ids follow the list)."""
    if not messages:
        return
    await conn.execute(
        """
        INSERT INTO outbox (event_id, event_type, topic, message_key, payload, headers, order_id, source_time, shard)
        SELECT event_id, event_type, topic, message_key, payload, headers::jsonb, order_id,
               to_timestamp(source_ms / 1000.0), shard
          FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bytea[], $5::bytea[], $6::text[], $7::bigint[],
                      $8::bigint[], $9::int[])
                 WITH ORDINALITY AS m(event_id, event_type, topic, message_key, payload, headers, order_id, source_ms,
                                      shard, n)
         ORDER BY n
        """,
        [m.event_id for m in messages],
        [m.event_type for m in messages],
        [m.topic for m in messages],
        [m.key for m in messages],
        [m.value for m in messages],
        # JSON text, as a list inside an array would read as a second dimension; hex keeps header bytes exact
        [json.dumps([[name, None if value is None else value.hex()] for name, value in m.headers]) for m in messages],
        [m.order_id for m in messages],
        [m.source_timestamp_ms for m in messages],
        [m.shard for m in messages],
    )


@dataclass(frozen=True)
class StoredMessage:
    id: int
    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes | None]]
    source_time: datetime | None = None  # the command's Kafka timestamp (end-to-end latency)


def _stored(row) -> StoredMessage:
    headers = [(name, None if value is None else bytes.fromhex(value)) for name, value in row["headers"]]
    return StoredMessage(row["id"], row["topic"], row["message_key"], bytes(row["payload"]), headers,
                         row.get("source_time"))


@dataclass
class RelayBatch:
    rows: list[StoredMessage]
    _conn: object

    async def mark_published(self, ids: Sequence[int]) -> None:
        if ids:
            await self._conn.execute("UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])", list(ids))

    async def park(self, reasons: Sequence[tuple[int, str]]) -> None:
        """Set rows aside that the broker refused for good, each with why."""
        if reasons:
            await self._conn.execute(
                """
                UPDATE outbox o SET parked_at = now(), park_reason = p.reason
                  FROM unnest($1::bigint[], $2::text[]) AS p(id, reason) WHERE o.id = p.id
                """,
                [i for i, _ in reasons], [r for _, r in reasons],
            )


@contextlib.asynccontextmanager
async def unpublished(pool, limit: int, shard: int) -> AsyncIterator[RelayBatch | None]:
    """The oldest publishable rows of one shard, under that shard's relay lock, in one transaction
    (None: another relay holds it). What the batch marks commits when the block exits without an error.

    One lock per shard, not one for the table: relays of different shards publish at once, while the
    rows of one shard (one commands partition, so every event of an order) go out one relay at a time,
    in id order. Publishable: not published, not parked, and not behind a parked row of the same topic
    and key (an order's events keep their version order even while one of them is parked)."""
    async with pool.acquire() as conn:
        async with conn.transaction():
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1, $2)", RELAY_LOCK_CLASS, shard):
                yield None
                return
            rows = await conn.fetch(
                """
                SELECT id, topic, message_key, payload, headers, source_time FROM outbox o
                 WHERE shard = $2 AND published_at IS NULL AND parked_at IS NULL
                   AND NOT (o.message_key IS NOT NULL AND EXISTS (
                        SELECT 1 FROM outbox p
                         WHERE p.parked_at IS NOT NULL AND p.published_at IS NULL
                           AND p.topic = o.topic AND p.message_key = o.message_key AND p.id < o.id))
                 ORDER BY id LIMIT $1
                """,
                limit, shard,
            )
            yield RelayBatch([_stored(r) for r in rows], conn)


async def shards_waiting(pool_or_conn, older_than_s: float) -> list[int]:
    """Shards with publishable rows older than `older_than_s`: the sweep that publishes what no current
    owner does (a partition nobody owns now, rows written before a rebalance)."""
    rows = await pool_or_conn.fetch(
        """
        SELECT DISTINCT shard FROM outbox
         WHERE published_at IS NULL AND parked_at IS NULL AND created_at < now() - make_interval(secs => $1)
        """,
        older_than_s,
    )
    return sorted(r["shard"] for r in rows)


@dataclass(frozen=True)
class OutboxStats:
    backlog: int  # unpublished rows the relay will publish (parked ones and those behind them included)
    oldest_age_s: float | None  # age of the oldest of them
    parked: int


async def stats(pool_or_conn) -> OutboxStats:
    row = await pool_or_conn.fetchrow(
        """
        SELECT count(*) FILTER (WHERE parked_at IS NULL) AS backlog,
               extract(epoch FROM now() - min(created_at) FILTER (WHERE parked_at IS NULL)) AS oldest,
               count(*) FILTER (WHERE parked_at IS NOT NULL) AS parked
          FROM outbox WHERE published_at IS NULL
        """
    )
    return OutboxStats(row["backlog"], None if row["oldest"] is None else float(row["oldest"]), row["parked"])


@dataclass(frozen=True)
class ParkedRow:
    id: int
    topic: str
    key: bytes | None
    size: int
    created_at: datetime
    parked_at: datetime
    reason: str
    held_back: int  # later rows of the same topic and key waiting behind it


async def parked(pool_or_conn, limit: int = 1000) -> list[ParkedRow]:
    rows = await pool_or_conn.fetch(
        """
        SELECT p.id, p.topic, p.message_key, octet_length(p.payload) AS size, p.created_at, p.parked_at,
               p.park_reason,
               (SELECT count(*) FROM outbox o WHERE o.published_at IS NULL AND o.parked_at IS NULL
                   AND o.topic = p.topic AND o.message_key = p.message_key AND o.id > p.id) AS held_back
          FROM outbox p WHERE p.parked_at IS NOT NULL AND p.published_at IS NULL
         ORDER BY p.id LIMIT $1
        """,
        limit,
    )
    return [ParkedRow(r["id"], r["topic"], r["message_key"], r["size"], r["created_at"], r["parked_at"],
                      r["park_reason"], r["held_back"]) for r in rows]


async def unpark(pool_or_conn, ids: Sequence[int]) -> list[int]:
    """Make parked rows publishable again (after a fix); returns the ids that were parked."""
    rows = await pool_or_conn.fetch(
        """
        UPDATE outbox SET parked_at = NULL, park_reason = NULL
         WHERE id = ANY($1::bigint[]) AND parked_at IS NOT NULL AND published_at IS NULL
        RETURNING id
        """,
        list(ids),
    )
    return sorted(r["id"] for r in rows)


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
