"""Console data (issue 21): process heartbeats, the dead-letter index, and time indexes for the activity charts.

* `process_heartbeats`: one row per running process (worker, notifier, gateway, console), written by the
  process itself every few seconds (`service/runtime/heartbeat.py`), so the console needs no list of
  addresses and sees any number of replicas. `beat_at` is the database's clock at the last beat, and
  `interval_s` the beat interval the process promised: a row whose last beat is older than a few of its
  intervals is stale (a process killed, or cut off from Postgres). A clean stop sets `stopped_at`.
* `dead_letter_index`: one row per record of the DLQ topic, upserted by the console's indexer (a
  consumer of its own group) by (topic, partition, offset), so a replica or a replay writes the same row
  again. It holds what the console filters and lists by; the letter itself stays in Kafka and is read
  by its offset. The (topic, written_at, partition, offset) index serves keyset paging newest first.
* Indexes on `processed_commands.processed_at`, `order_history.occurred_at` and
  `sent_notifications.sent_at`: the per-minute activity of the last hour reads a time range of each.

Revision ID: 0009
Revises: 0008
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


STATEMENTS = [
    """
    CREATE TABLE process_heartbeats (
        process_id text PRIMARY KEY,
        kind       text NOT NULL,
        host       text NOT NULL,
        pid        integer NOT NULL,
        version    text NOT NULL,
        started_at timestamptz NOT NULL,
        beat_at    timestamptz NOT NULL DEFAULT now(),
        interval_s double precision NOT NULL CHECK (interval_s > 0),
        ready      boolean NOT NULL,
        state      jsonb NOT NULL DEFAULT '{}',
        partitions jsonb NOT NULL DEFAULT '{}',
        stopped_at timestamptz
    )
    """,
    """
    CREATE TABLE dead_letter_index (
        topic              text NOT NULL,
        partition          integer NOT NULL CHECK (partition >= 0),
        "offset"           bigint NOT NULL CHECK ("offset" >= 0),
        written_at         timestamptz NOT NULL,
        reason             text,
        message            text,
        command_id         text,
        order_id           bigint,
        original_topic     text,
        original_partition integer,
        original_offset    bigint,
        message_key        bytea,
        size               integer NOT NULL,
        truncated          boolean NOT NULL DEFAULT false,
        redrive_count      integer NOT NULL DEFAULT 0,
        indexed_at         timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (topic, partition, "offset")
    )
    """,
    'CREATE INDEX dead_letter_index_by_time ON dead_letter_index (topic, written_at DESC, partition DESC, "offset" DESC)',
    "CREATE INDEX dead_letter_index_by_reason ON dead_letter_index (topic, reason, written_at DESC)",
    "CREATE INDEX dead_letter_index_by_command ON dead_letter_index (topic, command_id) WHERE command_id IS NOT NULL",
    "CREATE INDEX dead_letter_index_by_order ON dead_letter_index (topic, order_id) WHERE order_id IS NOT NULL",
    "CREATE INDEX processed_commands_processed_at ON processed_commands (processed_at)",
    "CREATE INDEX order_history_occurred_at ON order_history (occurred_at)",
    "CREATE INDEX sent_notifications_sent_at ON sent_notifications (sent_at)",
]


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP INDEX sent_notifications_sent_at")
    op.execute("DROP INDEX order_history_occurred_at")
    op.execute("DROP INDEX processed_commands_processed_at")
    op.execute("DROP TABLE dead_letter_index")
    op.execute("DROP TABLE process_heartbeats")
