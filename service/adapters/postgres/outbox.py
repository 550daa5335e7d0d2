"""The `outbox` table, and how rows enter it: every message the service emits is written in the deciding
transaction (the unit of work's writer) and published afterwards by the relay, at least once and in id
order (DESIGN §7.4).

Rows belong to shards; each shard has a cursor (`outbox_cursor.published_through`): every row up to it
is settled, published or parked, so publishing a round of rows costs one cursor update, not one update
per row. A cursor may only pass rows that can no longer appear below it, so writers of a shard hold its
write lock until they commit: a shard's ids are handed out in commit order.

A row the broker refuses for good is parked (`parked_at`, `park_reason`); the later rows of its line are
parked behind it (`held_behind`: the rule is `service.domain.outbox`), so an order's events never overtake
one another, until an operator retries it: then it and the rows behind it go back in line, at the end of
their shard.

The modules beside this one serve the table's other callers: `outbox_relay_store` (the relay's rounds),
`outbox_ops` (status, parked rows, retry) and `outbox_events` (stored events read back: republish,
resend)."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic_core import to_json

from service.contract.events import WireMessage
from service.domain.outbox import StoredMessage

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
    await lock_for_writing(conn, {m.shard for m in messages})
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


async def lock_for_writing(conn, shards) -> None:
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


def stored_message(row) -> StoredMessage:
    """An outbox row as read (the id, shard, topic, key, payload and headers columns; source_time if read)."""
    headers = [(name, None if value is None else bytes.fromhex(value)) for name, value in row["headers"]]
    return StoredMessage(row["id"], row["topic"], row["message_key"], bytes(row["payload"]), headers,
                         row.get("source_time"), row["shard"])
