"""Each consumer's position in Postgres (migration 0008, DESIGN §12 "Progress", issue 24).

A consumer writes, in the transaction of the work it covers, the next offset of each partition that work
read; so the database's position is always the end of what the database itself holds. After a failover
that lost the last commits (an asynchronous standby promoted), the database's position is behind Kafka's
committed offset, and the consumer starts from it: the lost messages are read and decided again.

A position only moves forward here: a consumer that redoes an older batch (a claim lost to the partition's
new owner after a rebalance) never moves it back."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import asyncpg

from service.adapters.errors import PositionGap

# (topic, partition) -> the offset of the next message to read
Positions = Mapping[tuple[str, int], int]


async def advance(conn: asyncpg.Connection, group: str, positions: Positions,
                  first_offsets: Positions | None = None) -> dict[tuple[str, int], int]:
    """Move the group's positions forward to the given next offsets (in the caller's transaction) — unless a
    stored position is behind the unit's first offset of its partition (`first_offsets`): then nothing is
    written and the gaps are returned, (topic, partition) -> the stored position. One statement either way."""
    if not positions:
        return {}
    firsts = first_offsets or {}
    items = sorted(positions.items())  # one lock order for every writer of the group's rows
    rows = await conn.fetch(
        """
        WITH u AS (SELECT * FROM unnest($2::text[], $3::int[], $4::bigint[], $5::bigint[]) AS u(t, p, o, f)),
        gap AS (
            SELECT c.topic, c.partition, c.next_offset FROM consumer_positions c
            JOIN u ON c.consumer_group = $1 AND c.topic = u.t AND c.partition = u.p
            WHERE c.next_offset < u.f
        ),
        moved AS (
            INSERT INTO consumer_positions (consumer_group, topic, partition, next_offset)
            SELECT $1, t, p, o FROM u WHERE NOT EXISTS (SELECT 1 FROM gap)
            ON CONFLICT (consumer_group, topic, partition) DO UPDATE
                SET next_offset = greatest(consumer_positions.next_offset, EXCLUDED.next_offset), updated_at = now()
        )
        SELECT topic, partition, next_offset FROM gap
        """,
        group, [t for (t, _), _ in items], [p for (_, p), _ in items], [o for _, o in items],
        [firsts.get(where) for where, _ in items],
    )
    return {(r["topic"], r["partition"]): r["next_offset"] for r in rows}


async def read(conn: asyncpg.Connection, group: str, partitions: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]:
    """The group's positions of the given partitions (a partition without a row is left out)."""
    wanted = sorted(set(partitions))
    if not wanted:
        return {}
    rows = await conn.fetch(
        "SELECT topic, partition, next_offset FROM consumer_positions WHERE consumer_group = $1 "
        "AND (topic, partition) IN (SELECT * FROM unnest($2::text[], $3::int[]))",
        group, [t for t, _ in wanted], [p for _, p in wanted],
    )
    return {(r["topic"], r["partition"]): r["next_offset"] for r in rows}


class PostgresPositions:
    """The consume loop's `PositionStore` on a pool: where each assigned partition starts (issue 24), and the
    positions of a consumer that writes them after its batch."""

    def __init__(self, pool, group: str) -> None:
        self.pool = pool
        self.group = group

    async def read(self, partitions: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]:
        async with self.pool.acquire() as conn:
            return await read(conn, self.group, partitions)

    async def advance(self, next_offsets: Positions, first_offsets: Positions) -> None:
        """Move the positions after a batch whose records were written in their own transactions (the notifier:
        its sent-notification records, each committed before this): replication keeps commit order, so a
        database that has this position has those records. Raises PositionGap (nothing written) when a stored
        position is behind the batch's first offset: the database lost records."""
        async with self.pool.acquire() as conn:
            gaps = await advance(conn, self.group, next_offsets, first_offsets)
        if gaps:
            raise PositionGap(gaps)

    async def bridge(self, next_offsets: Positions) -> None:
        """Move positions forward past offsets that hold no records (never back, no gap check)."""
        async with self.pool.acquire() as conn:
            await advance(conn, self.group, next_offsets)
