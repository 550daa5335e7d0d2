"""Outbox parking: a row the broker refuses for good is parked instead of retried for ever.

`parked_at` and `park_reason` mark it; the relay skips parked rows and holds back the later rows of
the same topic and key, so an order's events never overtake one another; `orderstatus outbox retry`
clears the mark. The partial index finds the (few) parked rows.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE outbox ADD COLUMN parked_at timestamptz, ADD COLUMN park_reason text")
    op.execute(
        "CREATE INDEX outbox_parked ON outbox (topic, message_key) "
        "WHERE parked_at IS NOT NULL AND published_at IS NULL"
    )


def downgrade() -> None:
    op.execute("DROP INDEX outbox_parked")
    op.execute("ALTER TABLE outbox DROP COLUMN parked_at, DROP COLUMN park_reason")
