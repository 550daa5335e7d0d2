"""The console scenario's database at volume, made in SQL (`generate_series`), not row by row.

What a year of a busy shop looks like to the console: `orders` orders of five types (SO 60 %, PO 15 %,
SC 10 %, PC 5 %, TR 10 %) over 40,000 clients, each with a client contact; `order_history` of about
`history` rows — one order in a thousand has 500 changes (the long timelines), the others 1 to 8 —
moving along each type's path, by staff, managers and the system, notes public and private, some with a
file; and the last hour as the worker would have left it: one order in five changed in it (its newest
change), each change's `processed_commands` record, its event in the outbox (published, with a
`traceparent`) and its emails (sent, a few failed or in doubt), plus rejected, invalid and partial
commands with their rejection events, an unpublished backlog and parked outbox rows with rows held
behind them, and an audit trail. Sizes scale with `orders`; `--quick` passes a smaller number.

The big tables are loaded without their indexes and constraints, which are made again afterwards from
their own definitions (`pg_get_constraintdef`, `pg_get_indexdef`): building a B-tree once is several
times faster than 5,000,000 random inserts into it (event ids are random UUIDs).

Event ids of the generated history are md5-based UUIDs, not the worker's `event_id_for(command_id, n)`;
`fix_event_ids` gives a sample of rows their real ids so a search by command id finds them the way it
finds a real command (the query is the same index lookup whichever rows carry real ids)."""

from __future__ import annotations

from service.domain.events import event_id_for

LONG_EVERY = 1000  # one order in LONG_EVERY has LONG_HISTORY changes
LONG_HISTORY = 500
CLIENTS = 40_000
FIRST_ORDER = 1_000_001
REJECTION_REASONS = ("invalid_transition", "stale_expected_status", "forbidden_role", "unknown_order",
                     "unknown_status")

# each type's path through its statuses (ids of the sample rules): change v goes path[v-1] -> path[v]
_PATHS = """
    CREATE TEMP TABLE bench_paths (order_type text PRIMARY KEY, path int[] NOT NULL);
    INSERT INTO bench_paths VALUES ('SO', '{1,2,3,5,6,30,31,40}'), ('PO', '{1,2,8,30,31,40}'),
        ('SC', '{1,2,30,31,40}'), ('PC', '{1,2,30,31,40}'), ('TR', '{100,101,102,104,105,106,108}');
    CREATE TEMP TABLE bench_labels AS
        SELECT id, jsonb_build_object('id', id, 'code', code, 'name', name) AS label FROM statuses;
    ALTER TABLE bench_labels ADD PRIMARY KEY (id)
"""

# changes per order: LONG_HISTORY for one in LONG_EVERY, 1..8 for the others (mean 4.5)
_ORDERS = f"""
    INSERT INTO orders (order_id, order_type, client_id, status_id, version, payments_total, created_at, updated_at)
    SELECT g, t.order_type, 'c-' || (hashint8(g + 3) & 2147483647) % {CLIENTS},
           p.path[1 + (v.n % cardinality(p.path))], v.n, round(((hashint8(g + 7) & 65535) / 100.0)::numeric, 2),
           now() - interval '400 days' + (g - $1::bigint) * (interval '390 days' / $2::int), now() - interval '2 hours'
      FROM generate_series($1::bigint, $1::bigint + $2::int - 1) AS g
      CROSS JOIN LATERAL (SELECT CASE WHEN g % {LONG_EVERY} = 0 THEN {LONG_HISTORY}
                                      ELSE 1 + (hashint8(g) & 2147483647) % 8 END AS n) v
      CROSS JOIN LATERAL (SELECT CASE WHEN (hashint8(g + 1) & 1023) < 614 THEN 'SO'
                                      WHEN (hashint8(g + 1) & 1023) < 768 THEN 'PO'
                                      WHEN (hashint8(g + 1) & 1023) < 870 THEN 'SC'
                                      WHEN (hashint8(g + 1) & 1023) < 922 THEN 'PC' ELSE 'TR' END AS order_type) t
      JOIN bench_paths p ON p.order_type = t.order_type
"""

_CONTACTS = """
    INSERT INTO order_contacts (order_id, email, name, kind)
    SELECT order_id, client_id || '@example.com', 'Client ' || client_id, 'client' FROM orders WHERE order_id >= $1
"""

# the newest change of one order in five happened in the last hour; the others follow the order's creation
_HISTORY = """
    INSERT INTO order_history (order_id, version, event_id, command_id, from_status, to_status, override, actor,
                               note_text, is_public, file_id, occurred_at)
    SELECT o.order_id, v, md5('event/' || o.order_id || '/' || v)::uuid, 'cmd-' || o.order_id || '-' || v,
           f.label, t.label, v % 97 = 0,
           jsonb_build_object('id', (ARRAY['staff-', 'manager-', 'system-'])[1 + v % 3] || (o.order_id % 50),
                              'role', (ARRAY['staff', 'manager', 'system'])[1 + v % 3], 'client_id', NULL),
           CASE WHEN v % 4 = 0 THEN '' ELSE 'change ' || v || ' of order ' || o.order_id
                || CASE WHEN v % 3 = 0 THEN ': the customer was told' ELSE ': internal, carrier ref 4711' END END,
           v % 3 = 0, CASE WHEN v % 7 = 0 THEN o.order_id * 10 + v % 10 END,
           CASE WHEN v = o.version AND o.order_id % 5 = 0
                THEN now() - interval '59 minutes' * ((hashint8(o.order_id) & 65535) / 65536.0)
                ELSE least(o.created_at + v * interval '10 minutes', now() - interval '2 hours') END
      FROM orders o
      JOIN bench_paths p ON p.order_type = o.order_type
      CROSS JOIN LATERAL generate_series(1, o.version) AS v
      JOIN bench_labels f ON f.id = p.path[1 + ((v - 1) % cardinality(p.path))]
      JOIN bench_labels t ON t.id = p.path[1 + (v % cardinality(p.path))]
     WHERE o.order_id >= $1
"""

_LAST_HOUR = ("CREATE TEMP TABLE bench_last_hour AS "
              "SELECT * FROM order_history WHERE occurred_at > now() - interval '1 hour'")

_PROCESSED = f"""
    INSERT INTO processed_commands (command_id, command_type, outcome, source, processed_at)
    SELECT command_id, 'ChangeOrderStatus', 'applied', 'commands', occurred_at FROM bench_last_hour
    UNION ALL
    SELECT 'rejected-' || g, 'ChangeOrderStatus',
           'rejected:' || (ARRAY{list(REJECTION_REASONS)!r})[1 + g % {len(REJECTION_REASONS)}], 'commands',
           now() - interval '59 minutes' * ((hashint4(g) & 65535) / 65536.0)
      FROM generate_series(1, $1::int) g
    UNION ALL
    SELECT 'invalid-' || g, 'ChangeOrderStatus', 'invalid', 'commands',
           now() - interval '59 minutes' * ((hashint4(g + 3) & 65535) / 65536.0) FROM generate_series(1, $2::int) g
    UNION ALL
    SELECT 'partial-' || g, 'OverrideOrderStatuses', 'partial', 'gateway',
           now() - interval '59 minutes' * ((hashint4(g + 5) & 65535) / 65536.0) FROM generate_series(1, $3::int) g
"""

# the events of the last hour's changes, published (at or below their shard's cursor), with a traceparent
_EVENTS = """
    INSERT INTO outbox (event_id, event_type, topic, message_key, payload, headers, order_id, created_at, shard)
    SELECT h.event_id, 'OrderStatusChanged', $1, convert_to(h.order_id::text, 'UTF8'),
           convert_to(jsonb_build_object('type', 'OrderStatusChanged', 'event_id', h.event_id,
                                         'command_id', h.command_id, 'order_id', h.order_id,
                                         'from_status', h.from_status, 'to_status', h.to_status,
                                         'actor', h.actor, 'occurred_at', h.occurred_at)::text, 'UTF8'),
           jsonb_build_array(jsonb_build_array('traceparent', encode(convert_to(
               '00-' || md5('trace' || h.event_id) || '-' || left(md5('span' || h.event_id), 16) || '-01',
               'UTF8'), 'hex'))),
           h.order_id, h.occurred_at, (h.order_id % $2::int)::int
      FROM bench_last_hour h ORDER BY h.occurred_at
"""

_REJECTIONS = f"""
    INSERT INTO outbox (event_id, event_type, topic, message_key, payload, order_id, created_at, shard)
    SELECT md5('rejection/' || g)::uuid, 'OrderStatusChangeRejected', $1, convert_to(o.order_id::text, 'UTF8'),
           convert_to(jsonb_build_object(
               'type', 'OrderStatusChangeRejected', 'command_id', 'rejected-' || g, 'order_id', o.order_id,
               'reason', (ARRAY{list(REJECTION_REASONS)!r})[1 + g % {len(REJECTION_REASONS)}],
               'message', 'the change to Dispatched is not allowed from Draft for staff',
               'requested_status', jsonb_build_object('code', 'Dispatched'),
               'actor', jsonb_build_object('id', 'staff-' || g % 50, 'role', 'staff', 'client_id', NULL),
               'occurred_at', now() - interval '59 minutes' * ((hashint4(g) & 65535) / 65536.0))::text, 'UTF8'),
           o.order_id, now() - interval '59 minutes' * ((hashint4(g) & 65535) / 65536.0), (o.order_id % $4::int)::int
      FROM generate_series(1, $2::int) g
      -- one rejection in ten goes to a long-history order (their Order pages list many)
      JOIN orders o ON o.order_id = CASE WHEN g % 10 = 0
                                         THEN $3::bigint + (g % greatest($5::int / {LONG_EVERY}, 1)) * {LONG_EVERY}
                                              + {LONG_EVERY} - 1
                                         ELSE $3::bigint + (hashint4(g) & 2147483647) % $5::int END
"""

_CURSORS = """
    INSERT INTO outbox_cursor (shard, published_through)
    SELECT s, coalesce((SELECT max(id) FROM outbox WHERE shard = s), 0) FROM generate_series(0, $1 - 1) s
    ON CONFLICT (shard) DO UPDATE SET published_through = EXCLUDED.published_through
"""

# after the cursors: an unpublished backlog, and parked rows each with rows of its key held behind it
_BACKLOG = """
    INSERT INTO outbox (event_id, event_type, topic, message_key, payload, order_id, created_at, shard)
    SELECT md5('backlog/' || g)::uuid, 'OrderStatusChanged', $1, convert_to(($2::bigint + g)::text, 'UTF8'),
           convert_to('{"type": "OrderStatusChanged"}', 'UTF8'), $2::bigint + g, now() - interval '3 seconds',
           (($2::bigint + g) % $3::int)::int
      FROM generate_series(1, 300) g
"""
_PARKED = """
    WITH parked AS (
        INSERT INTO outbox (event_id, event_type, topic, message_key, payload, order_id, created_at, shard, parked_at,
                            park_reason)
        SELECT md5('parked/' || g)::uuid, 'OrderStatusChanged', $1, convert_to(($2::bigint + g * 37)::text, 'UTF8'),
               convert_to(repeat('x', 2000), 'UTF8'), $2::bigint + g * 37, now() - interval '20 minutes',
               (($2::bigint + g * 37) % $3::int)::int, now() - interval '19 minutes',
               'MessageSizeTooLargeError: the broker refused the record (MESSAGE_TOO_LARGE)'
          FROM generate_series(1, 25) g
        RETURNING id, message_key, order_id, shard)
    INSERT INTO outbox (event_id, event_type, topic, message_key, payload, order_id, created_at, shard, parked_at,
                        park_reason, held_behind)
    SELECT md5('held/' || p.id || '/' || n)::uuid, 'OrderStatusChanged', $1, p.message_key,
           convert_to('{"type": "OrderStatusChanged"}', 'UTF8'), p.order_id, now() - interval '18 minutes', p.shard,
           now() - interval '18 minutes', 'held behind a parked row', p.id
      FROM parked p CROSS JOIN generate_series(1, 4) n
"""

# emails of the last hour's public changes: sent, a few failed, a few still in doubt
_EMAILS = """
    INSERT INTO sent_notifications (event_id, recipient, attempt, status, reason, sent_at)
    SELECT h.event_id, o.client_id || '@example.com', 1,
           CASE WHEN h.order_id % 50 = 0 THEN 'failed' ELSE 'sent' END,
           CASE WHEN h.order_id % 50 = 0 THEN '550 mailbox unavailable' END, h.occurred_at + interval '2 seconds'
      FROM bench_last_hour h JOIN orders o USING (order_id) WHERE h.is_public OR h.order_id % 2 = 0
"""
_IN_DOUBT = """
    INSERT INTO sent_notifications (event_id, recipient, attempt, status, sent_at)
    SELECT event_id, 'ops@example.com', 1, 'sending', occurred_at + interval '1 second'
      FROM bench_last_hour WHERE order_id % 400 = 0
"""

_AUDIT = """
    INSERT INTO console_audit (at, actor_sub, actor_role, actor_name, action, target, count, result, detail)
    SELECT now() - g * interval '5 minutes', 'manager-' || g % 7, 'manager', 'Manager ' || g % 7,
           (ARRAY['dlq.redrive', 'outbox.retry', 'email.resend'])[1 + g % 3], 'filter reason=validation_failed',
           g % 40, 'ok', jsonb_build_object('positions', jsonb_build_array('0:' || g))
      FROM generate_series(1, $1) g
"""


async def _without_indexes(conn, table: str, load) -> None:
    """Run `load()` with `table`'s foreign keys, unique constraints and indexes dropped, then make them again
    from their own definitions (the primary key stays: other tables' foreign keys may need it)."""
    constraints = await conn.fetch(
        "SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint "
        "WHERE conrelid = $1::regclass AND contype IN ('u', 'f') ORDER BY contype DESC", table)
    indexes = await conn.fetch(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = $1 AND indexname NOT IN "
        "(SELECT conname FROM pg_constraint WHERE conrelid = $1::regclass AND contype IN ('p', 'u'))", table)
    for c in constraints:
        await conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{c["conname"]}"')
    for i in indexes:
        await conn.execute(f'DROP INDEX "{i["indexname"]}"')
    await load()
    for i in indexes:
        await conn.execute(i["indexdef"])
    for c in reversed(constraints):  # unique ones before the foreign keys
        await conn.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{c["conname"]}" {c["def"]}')


async def seed(conn, orders: int, events_topic: str, shards: int, say=print) -> dict:
    """Fill the migrated database (the sample rules loaded); returns what was made, row counts by table."""
    rejected, invalid, partial = orders // 25, orders // 200, orders // 250
    await conn.execute("SET maintenance_work_mem = '512MB'")
    for statement in filter(str.strip, _PATHS.split(";")):
        await conn.execute(statement)
    await conn.execute(_ORDERS, FIRST_ORDER, orders)
    say(f"orders: {orders:,}")
    await conn.execute(_CONTACTS, FIRST_ORDER)
    await _without_indexes(conn, "order_history", lambda: conn.execute(_HISTORY, FIRST_ORDER))
    say("history")
    await conn.execute(_LAST_HOUR)
    await _without_indexes(conn, "processed_commands",
                           lambda: conn.execute(_PROCESSED, rejected, invalid, partial))
    await conn.execute(_EVENTS, events_topic, shards)
    await conn.execute(_REJECTIONS, events_topic, rejected, FIRST_ORDER, shards, orders)
    await conn.execute(_CURSORS, shards)
    await conn.execute(_BACKLOG, events_topic, FIRST_ORDER, shards)
    await conn.execute(_PARKED, events_topic, FIRST_ORDER, shards)
    await conn.execute(_EMAILS)
    await conn.execute(_IN_DOUBT)
    await conn.execute(_AUDIT, max(orders // 200, 100))
    await conn.execute("ANALYZE")
    counts = {}
    for table in ("orders", "order_contacts", "order_history", "processed_commands", "outbox", "sent_notifications",
                  "console_audit"):
        counts[table] = await conn.fetchval(f"SELECT count(*) FROM {table}")
    counts["history_last_hour"] = await conn.fetchval("SELECT count(*) FROM bench_last_hour")
    counts["parked"] = await conn.fetchval(
        "SELECT count(*) FROM outbox WHERE parked_at IS NOT NULL AND held_behind IS NULL")
    return counts


async def fix_event_ids(conn, sample: int) -> list[tuple[str, int]]:
    """Give `sample` history rows (long and short timelines) the event id the worker would have given them,
    `event_id_for(command_id, 0)`; returns their (command_id, order_id)."""
    rows = await conn.fetch(
        "SELECT id, command_id, order_id FROM order_history WHERE order_id % 997 = 0 ORDER BY order_id, version DESC "
        "LIMIT $1", sample)
    await conn.execute(
        "UPDATE order_history h SET event_id = u.event_id FROM unnest($1::bigint[], $2::uuid[]) AS u(id, event_id) "
        "WHERE h.id = u.id",
        [r["id"] for r in rows], [event_id_for(r["command_id"], 0) for r in rows])
    return [(r["command_id"], r["order_id"]) for r in rows]
