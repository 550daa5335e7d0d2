"""Deleting what only a replay could still need, in bounded batches (issue 11, retention).

* `outbox`: rows published (never an unpublished or parked one) and created before the cutoff; the
  events stay in the events topic, but `republish` can no longer reach them.
* `processed_commands`: dedupe records processed before the cutoff.
* `sent_notifications`: records of emails sent or refused before the cutoff; never a `sending` claim
  (an email in doubt stays until an operator resends it).
* `idempotency_keys`: the gateway's key bindings made before the cutoff (their commands' records go too).

Each statement deletes at most `limit` rows, so a large backlog never holds long locks or bloats one
transaction. Which cutoff is safe is the caller's question (`service.ops.prune`)."""

from __future__ import annotations

from datetime import datetime

# table -> the condition that makes a row old enough and finished ($1: the cutoff)
OLD = {
    # published: at or below its shard's cursor and not parked, or published out of line
    "outbox": "created_at < $1 AND (published_at IS NOT NULL OR (parked_at IS NULL AND id <= "
              "(SELECT c.published_through FROM outbox_cursor c WHERE c.shard = outbox.shard)))",
    "processed_commands": "processed_at < $1 AND outcome <> 'pending'",
    "sent_notifications": "status IN ('sent', 'failed') AND sent_at < $1",
    # the gateway's key bindings go with the command records they guard (a retry older than that re-applies anyway)
    "idempotency_keys": "created_at < $1",
}


async def count_old(conn, cutoff: datetime) -> dict[str, int]:
    """How many rows of each table a prune at `cutoff` would delete."""
    return {table: await conn.fetchval(f"SELECT count(*) FROM {table} WHERE {where}", cutoff)
            for table, where in OLD.items()}


async def delete_old(conn, table: str, cutoff: datetime, limit: int) -> int:
    """Delete at most `limit` old rows of `table`; returns how many went."""
    where = OLD[table]
    status = await conn.execute(
        f"DELETE FROM {table} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {table} WHERE {where} LIMIT $2))",
        cutoff, limit,
    )
    return int(status.split()[-1])
