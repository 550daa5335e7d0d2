"""Consumer positions (DESIGN §12 "Progress"; issue 24): the database is the source of truth for how far
each consumer group has got in each partition.

A consumer writes the next offset of a partition in the same transaction as the work that covers the
messages before it (the worker: its batch's unit of work; the notifier: its sent-notification records).
On assignment the consumer starts from the position this table holds, and uses Kafka's committed
offset only where the table has no row. So a database that lost its last commits in a failover (an
asynchronous standby promoted) makes the consumer read those messages again and decide them again on
the state the database really has, instead of skipping them because Kafka's offset is ahead.

Revision ID: 0008
Revises: 0007
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE consumer_positions (
            consumer_group text NOT NULL,
            topic          text NOT NULL,
            partition      integer NOT NULL CHECK (partition >= 0),
            next_offset    bigint NOT NULL CHECK (next_offset >= 0),
            updated_at     timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (consumer_group, topic, partition)
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE consumer_positions")
