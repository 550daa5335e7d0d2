"""Outbox cursors: the relay records how far it has published each shard, not each row.

`outbox_cursor.published_through` is the id up to which every row of a shard is settled (published, or
parked); the relay reads the rows after it, in id order, and moves it once per round — one small update
per round instead of a `published_at` update of every row. For that to be safe no row may commit below a
cursor: writers of a shard take its write lock (an advisory lock held until commit) before inserting, so
a shard's ids are handed out in commit order. `published_at` stays for the rare row published out of
line (acknowledged after an outage stopped its round). Rows waiting behind a parked row are parked too,
`held_behind` naming it, so the cursor can pass them. Existing shards start at the row before their
first unpublished one.

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE outbox_cursor (
            shard             integer PRIMARY KEY,
            published_through bigint NOT NULL
        )
        """
    )
    op.execute("ALTER TABLE outbox ADD COLUMN held_behind bigint")
    op.execute("CREATE INDEX outbox_by_shard ON outbox (shard, id)")
    op.execute("DROP INDEX outbox_unpublished_by_shard")
    op.execute(
        """
        INSERT INTO outbox_cursor (shard, published_through)
        SELECT shard, coalesce(min(id) FILTER (WHERE published_at IS NULL AND parked_at IS NULL) - 1, max(id))
          FROM outbox GROUP BY shard
        """
    )


def downgrade() -> None:
    op.execute(
        """
        UPDATE outbox o SET published_at = now()
          FROM outbox_cursor c
         WHERE o.shard = c.shard AND o.id <= c.published_through AND o.published_at IS NULL AND o.parked_at IS NULL
        """
    )
    op.execute("UPDATE outbox SET parked_at = NULL, park_reason = NULL WHERE held_behind IS NOT NULL")
    op.execute("CREATE INDEX outbox_unpublished_by_shard ON outbox (shard, id) WHERE published_at IS NULL")
    op.execute("DROP INDEX outbox_by_shard")
    op.execute("ALTER TABLE outbox DROP COLUMN held_behind")
    op.execute("DROP TABLE outbox_cursor")
