"""The relay's side of the outbox on Postgres: `PostgresOutboxStore`, the `OutboxStore` port of
`service.worker.relay_store` (lock a round of rows, settle it, shards waiting, stats).

The hold-behind rule (`service.domain.outbox`) is said once more here, in SQL, for the query of a round
(the `behind` column: the first parked row of a row's line); `tests/helpers/outbox_contract.py` checks it
against `held_back`."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from service.adapters.postgres import outbox_ops
from service.adapters.postgres.outbox import RELAY_LOCK_CLASS, stored_message
from service.domain.outbox import OutboxStats, Parking, StoredMessage


@dataclass
class RelayBatch:
    rows: list[StoredMessage]  # each locked shard's rows after its cursor, shard by shard, in id order
    held: dict[int, int]  # row id -> the parked row of its line (shard, topic, key) it has to wait behind
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
                           -- the first parked row of the row's line: service.domain.outbox.held_back
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
            yield RelayBatch([stored_message(r) for r in rows], held, conn, more)


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


class PostgresOutboxStore:
    """The relay's outbox on a pool: each round on a connection of its own, in one transaction."""

    def __init__(self, pool) -> None:
        self.pool = pool

    def lock_round(self, limit: int, shards: Sequence[int], max_bytes: int) -> contextlib.AbstractAsyncContextManager[
            RelayBatch | None]:
        return unpublished(self.pool, limit, shards, max_bytes)

    async def shards_waiting(self, older_than_s: float) -> list[int]:
        return await shards_waiting(self.pool, older_than_s)

    async def stats(self) -> OutboxStats:
        return await outbox_ops.stats(self.pool)
