"""The `outbox` table: every message the service emits is written in the deciding transaction and
published afterwards by the relay, at least once and in id order (DESIGN §7.4).

Rows belong to shards; each shard has a cursor (`outbox_cursor.published_through`): every row up to it
is settled, published or parked, so publishing a round of rows costs one cursor update, not one update
per row. A cursor may only pass rows that can no longer appear below it, so writers of a shard hold its
write lock until they commit: a shard's ids are handed out in commit order.

A row the broker refuses for good is parked (`parked_at`, `park_reason`); the later rows of its topic and
key are parked behind it (`held_behind`), so an order's events never overtake one another, until an
operator retries it: then it and the rows behind it go back in line, at the end of their shard."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from pydantic_core import to_json

from service.contract.events import WireMessage

# the first half of the relay's two-part advisory lock (the second is the shard): one relay per shard at
# a time, so two workers can never reorder one order's events
RELAY_LOCK_CLASS = 0x6F757462  # "outb"
# the writers' lock of a shard, held until commit: no row commits with an id below one already visible, so
# the relay's cursor never passes a row that is still to come
WRITE_LOCK_CLASS = 0x6F757477  # "outw"


async def insert(conn, messages: Sequence[WireMessage]) -> None:
    """All rows in one statement (unnest keeps their order, so ids follow the list), under the write locks
    of their shards (taken in shard order, held until the transaction ends)."""
    if not messages:
        return
    await _lock_for_writing(conn, {m.shard for m in messages})
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
        [to_json([[name, None if value is None else value.hex()] for name, value in m.headers]).decode()
         for m in messages],
        [m.order_id for m in messages],
        [m.source_timestamp_ms for m in messages],
        [m.shard for m in messages],
    )


async def _lock_for_writing(conn, shards) -> None:
    """Take the shards' write locks, in shard order (unnest keeps the array's), and make sure each has a
    cursor (a new shard starts before every row): one statement, one round trip."""
    await conn.execute(
        """
        INSERT INTO outbox_cursor (shard, published_through)
        SELECT s, 0 FROM unnest($2::int[]) AS s, LATERAL (SELECT pg_advisory_xact_lock($1, s)) AS locked
        ON CONFLICT (shard) DO NOTHING
        """,
        WRITE_LOCK_CLASS, sorted(shards),
    )


@dataclass(frozen=True)
class StoredMessage:
    id: int
    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes | None]]
    source_time: datetime | None = None  # the command's Kafka timestamp (end-to-end latency)
    shard: int = 0


def _stored(row) -> StoredMessage:
    headers = [(name, None if value is None else bytes.fromhex(value)) for name, value in row["headers"]]
    return StoredMessage(row["id"], row["topic"], row["message_key"], bytes(row["payload"]), headers,
                         row.get("source_time"), row["shard"])


@dataclass(frozen=True)
class Parking:
    id: int
    reason: str
    held_behind: int | None = None  # the parked row it waits behind (its topic and key); None: refused itself


@dataclass
class RelayBatch:
    rows: list[StoredMessage]  # each locked shard's rows after its cursor, shard by shard, in id order
    held: dict[int, int]  # row id -> the parked row of its topic and key it has to wait behind
    _conn: object
    more: set[int] = field(default_factory=set)  # shards whose part was cut (rows or bytes): more may wait

    async def settle(self, through: dict[int, int], published: Sequence[int], parked: Sequence[Parking]) -> None:
        """Record the round: each shard's cursor moves to its `through` (every row up to it is published or
        parked now), rows published beyond it (the round stopped before an earlier row) are marked one by
        one, and the parked rows are marked, each with why."""
        if through:
            await self._conn.execute(
                """
                UPDATE outbox_cursor c SET published_through = t.through
                  FROM unnest($1::int[], $2::bigint[]) AS t(shard, through) WHERE c.shard = t.shard
                """,
                list(through), list(through.values()),
            )
        if published:
            await self._conn.execute("UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])",
                                     list(published))
        if parked:
            await self._conn.execute(
                """
                UPDATE outbox o SET parked_at = now(), park_reason = p.reason, held_behind = p.behind
                  FROM unnest($1::bigint[], $2::text[], $3::bigint[]) AS p(id, reason, behind) WHERE o.id = p.id
                """,
                [p.id for p in parked], [p.reason for p in parked], [p.held_behind for p in parked],
            )


@contextlib.asynccontextmanager
async def unpublished(pool, limit: int, shards: Sequence[int], max_bytes: int = 8 * 1_048_576,
                      ) -> AsyncIterator[RelayBatch | None]:
    """The rows after the cursors of the shards, each under its shard's relay lock, in one transaction
    (None: other relays hold every one of them). What the batch settles commits when the block exits
    without an error.

    One lock per shard, not one for the table: relays of different shards publish at once, while the
    rows of one shard (every event of an order is in its order's shard) go out one relay at a time, in id
    order. One round takes every shard it can lock, so a batch that wrote to five shards costs one round
    of round trips, not five. Each shard's range after its cursor is read through the (shard, id) index
    and stops at its share of `limit` rows or once its share of `max_bytes` of payloads is in hand (at
    least one row: a round's memory is bounded); each row comes with the parked row of its topic and key
    it has to wait behind, if any (a probe of the small partial index of parked rows)."""
    async with pool.acquire() as conn:
        async with conn.transaction():
            # without statistics (a young table) the planner would read the whole backlog of a shard with a
            # bitmap scan and sort it, every round; walking the (shard, id) index stops at the share
            locked = [r["s"] for r in await conn.fetch(
                "SELECT s FROM set_config('enable_bitmapscan', 'off', true), unnest($2::int[]) AS s "
                "WHERE pg_try_advisory_xact_lock($1, s)",
                RELAY_LOCK_CLASS, sorted(set(shards)),
            )]
            if not locked:
                yield None
                return
            row_share, byte_share = max(limit // len(locked), 1), max(max_bytes // len(locked), 1)
            rows = await conn.fetch(
                """
                SELECT * FROM (
                    SELECT o.id, o.shard, o.topic, o.message_key, o.payload, o.headers, o.source_time,
                           (SELECT min(p.id) FROM outbox p
                             WHERE p.parked_at IS NOT NULL AND p.published_at IS NULL AND p.held_behind IS NULL
                               AND p.topic = o.topic AND p.message_key = o.message_key AND p.shard = o.shard
                           ) AS behind,
                           sum(octet_length(o.payload)) OVER (PARTITION BY o.shard ORDER BY o.id)
                             - octet_length(o.payload) AS bytes_before,
                           count(*) OVER (PARTITION BY o.shard) AS taken
                      FROM unnest($1::int[]) AS s(shard)
                      CROSS JOIN LATERAL (
                          SELECT * FROM outbox o
                           WHERE o.shard = s.shard AND o.published_at IS NULL AND o.parked_at IS NULL
                             AND o.id > (SELECT published_through FROM outbox_cursor c WHERE c.shard = s.shard)
                           ORDER BY o.id LIMIT $2) o
                ) r WHERE bytes_before < $3 ORDER BY shard, id
                """,
                locked, row_share, byte_share,
            )
            held = {r["id"]: r["behind"] for r in rows if r["behind"] is not None}
            last: dict[int, object] = {r["shard"]: r for r in rows}  # each shard's last row in the round
            more = {shard for shard, r in last.items()
                    if r["taken"] == row_share or r["bytes_before"] + len(r["payload"]) >= byte_share}
            yield RelayBatch([_stored(r) for r in rows], held, conn, more)


async def shards_waiting(pool_or_conn, older_than_s: float) -> list[int]:
    """Shards whose first row still to publish is older than `older_than_s`: the sweep that publishes what
    no current owner does (a partition nobody owns now, rows written before a rebalance)."""
    rows = await pool_or_conn.fetch(
        """
        SELECT c.shard FROM outbox_cursor c
         WHERE (SELECT o.created_at FROM outbox o
                 WHERE o.shard = c.shard AND o.id > c.published_through
                   AND o.published_at IS NULL AND o.parked_at IS NULL
                 ORDER BY o.id LIMIT 1) < now() - make_interval(secs => $1)
        """,
        older_than_s,
    )
    return sorted(r["shard"] for r in rows)


@dataclass(frozen=True)
class OutboxStats:
    backlog: int  # rows the relay has still to publish (parked ones and those held behind them not counted)
    oldest_age_s: float | None  # age of the oldest of them
    parked: int  # rows the broker refused (the rows held behind them are each parked row's `held_back`)


async def stats(pool_or_conn) -> OutboxStats:
    row = await pool_or_conn.fetchrow(
        """
        SELECT count(o.id) AS backlog, extract(epoch FROM now() - min(o.created_at)) AS oldest,
               (SELECT count(*) FROM outbox
                 WHERE parked_at IS NOT NULL AND published_at IS NULL AND held_behind IS NULL) AS parked
          FROM outbox_cursor c
          JOIN outbox o ON o.shard = c.shard AND o.id > c.published_through
         WHERE o.published_at IS NULL AND o.parked_at IS NULL
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
               (SELECT count(*) FROM outbox h WHERE h.held_behind = p.id AND h.parked_at IS NOT NULL) AS held_back
          FROM outbox p WHERE p.parked_at IS NOT NULL AND p.published_at IS NULL AND p.held_behind IS NULL
         ORDER BY p.id LIMIT $1
        """,
        limit,
    )
    return [ParkedRow(r["id"], r["topic"], r["message_key"], r["size"], r["created_at"], r["parked_at"],
                      r["park_reason"], r["held_back"]) for r in rows]


async def unpark(conn, ids: Sequence[int]) -> list[int]:
    """Put parked rows back in line after a fix; returns the ids that were parked (a row held behind one
    counts as its parked row). Each parked row moves, with the rows held behind it and the later rows of
    its topic and key the relay has not reached yet, to the end of its shard in their order: the relay
    publishes them next, and an order's events keep their order. The move holds the shard's relay lock
    (waiting for a round in progress) and its write lock."""
    async with conn.transaction():
        found = await conn.fetch(
            """
            SELECT id, coalesce(held_behind, id) AS parked_row FROM outbox
             WHERE id = ANY($1::bigint[]) AND parked_at IS NOT NULL AND published_at IS NULL
            """,
            list(ids),
        )
        heads = await conn.fetch(
            "SELECT id, shard, topic, message_key FROM outbox WHERE id = ANY($1::bigint[]) AND parked_at IS NOT NULL "
            "AND held_behind IS NULL ORDER BY id",
            sorted({r["parked_row"] for r in found}),
        )
        for shard in sorted({h["shard"] for h in heads}):
            await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", RELAY_LOCK_CLASS, shard)
        await _lock_for_writing(conn, {h["shard"] for h in heads})
        for head in heads:
            await conn.execute(
                """
                WITH line AS (  -- each part through an index: the shard's writers wait while this runs
                    SELECT id FROM outbox WHERE id = $1
                    UNION
                    SELECT id FROM outbox
                     WHERE topic = $3 AND message_key = $4 AND parked_at IS NOT NULL AND published_at IS NULL
                       AND held_behind = $1
                    UNION
                    SELECT id FROM outbox
                     WHERE shard = $2 AND id > (SELECT published_through FROM outbox_cursor WHERE shard = $2)
                       AND topic = $3 AND message_key = $4 AND published_at IS NULL AND parked_at IS NULL
                ), moved AS (
                    DELETE FROM outbox WHERE id IN (SELECT id FROM line) RETURNING *
                )
                INSERT INTO outbox (event_id, event_type, topic, message_key, payload, headers, order_id, created_at,
                                    source_time, shard)
                SELECT event_id, event_type, topic, message_key, payload, headers, order_id, created_at, source_time,
                       shard
                  FROM moved ORDER BY id
                """,
                head["id"], head["shard"], head["topic"], head["message_key"],
            )
    moved = {h["id"] for h in heads}
    return sorted(r["id"] for r in found if r["parked_row"] in moved)


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
    return [_stored(r) for r in rows]


async def stored_event(pool_or_conn, event_id: UUID) -> bytes | None:
    """The exact event JSON the worker published."""
    return await pool_or_conn.fetchval(
        "SELECT payload FROM outbox WHERE event_id = $1 AND payload IS NOT NULL ORDER BY id LIMIT 1", event_id
    )
