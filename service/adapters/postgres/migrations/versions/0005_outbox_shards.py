"""Outbox shards: each row belongs to the shard of the commands-topic partition its command came from.

The relay of the worker that owns a partition publishes that shard under a per-shard advisory lock,
so several workers publish at once, while one order's events (one partition, one shard) stay in id
order. Rows written before this revision are in shard 0.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE outbox ADD COLUMN shard integer NOT NULL DEFAULT 0")
    op.execute("CREATE INDEX outbox_unpublished_by_shard ON outbox (shard, id) WHERE published_at IS NULL")
    op.execute("DROP INDEX outbox_unpublished")


def downgrade() -> None:
    op.execute("CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL")
    op.execute("DROP INDEX outbox_unpublished_by_shard")
    op.execute("ALTER TABLE outbox DROP COLUMN shard")
