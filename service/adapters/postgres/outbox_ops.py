"""The operator's side of the outbox on Postgres: `orderstatus outbox status|parked|retry` (and the
relay's gauges read `stats`). `unpark` moves a parked row with the rest of its line (the rule is
`service.domain.outbox`) to the end of its shard."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from service.adapters.postgres.outbox import RELAY_LOCK_CLASS, lock_for_writing
from service.domain.outbox import OutboxStats


async def stats(pool_or_conn) -> OutboxStats:
    """Backlog, age of the oldest row still to publish, and parked rows (`orderstatus outbox status`, /status)."""
    # per shard, the rows after its cursor through the (shard, id) index: rows at or below a cursor keep
    # published_at NULL too (the cursor settles them), so a join the planner may turn into a scan of the
    # whole outbox read every row there is where only the backlog is wanted (the bench's console scenario)
    row = await pool_or_conn.fetchrow(
        """
        SELECT coalesce(sum(b.n), 0)::bigint AS backlog, extract(epoch FROM now() - min(b.oldest)) AS oldest,
               (SELECT count(*) FROM outbox
                 WHERE parked_at IS NOT NULL AND published_at IS NULL AND held_behind IS NULL) AS parked
          FROM outbox_cursor c
          CROSS JOIN LATERAL (
              SELECT count(*) AS n, min(o.created_at) AS oldest FROM outbox o
               WHERE o.shard = c.shard AND o.id > c.published_through
                 AND o.published_at IS NULL AND o.parked_at IS NULL) b
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
        await lock_for_writing(conn, {h["shard"] for h in heads})
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
