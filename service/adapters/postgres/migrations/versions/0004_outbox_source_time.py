"""Outbox source time: the Kafka timestamp of the command an event answers.

The relay observes `orderstatus_end_to_end_seconds` (command's timestamp → its events acknowledged by
the broker) when it marks a row published. Nullable: rows written before, dead letters, and commands
whose record carried no timestamp have none.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE outbox ADD COLUMN source_time timestamptz")


def downgrade() -> None:
    op.execute("ALTER TABLE outbox DROP COLUMN source_time")
