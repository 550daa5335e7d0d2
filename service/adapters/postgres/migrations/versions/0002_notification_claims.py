"""Notification claims: `sent_notifications.status` may be 'sending' (claimed, DATA not yet answered).

The notifier claims a (event_id, recipient) row before the SMTP DATA command and records the
answer afterwards (service/notifier/delivery.py); a 'sending' row left by a crash marks an email
whose outcome is unknown, which is never re-sent automatically. The partial index finds them.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE sent_notifications DROP CONSTRAINT sent_notifications_status_check")
    op.execute(
        "ALTER TABLE sent_notifications ADD CONSTRAINT sent_notifications_status_check "
        "CHECK (status IN ('sending', 'sent', 'failed'))"
    )
    op.execute("CREATE INDEX sent_notifications_in_doubt ON sent_notifications (sent_at) WHERE status = 'sending'")


def downgrade() -> None:
    op.execute("DROP INDEX sent_notifications_in_doubt")
    op.execute(
        "UPDATE sent_notifications SET status = 'failed', reason = COALESCE(reason, 'outcome unknown') "
        "WHERE status = 'sending'"
    )
    op.execute("ALTER TABLE sent_notifications DROP CONSTRAINT sent_notifications_status_check")
    op.execute(
        "ALTER TABLE sent_notifications ADD CONSTRAINT sent_notifications_status_check "
        "CHECK (status IN ('sent', 'failed'))"
    )
