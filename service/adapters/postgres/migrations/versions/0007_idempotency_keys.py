"""Idempotency keys of the gateway (DESIGN §12; issues 20 and 23): each key bound to its caller and its first
request.

The gateway derives a request's command id from the caller (token issuer and subject) and its
`Idempotency-Key`, so two callers never share a command id; this table records, per such command id,
the fingerprint of the first request that used it. A later request with the same key and caller but
another fingerprint is answered 422 `idempotency_key_reused` and never published. Rows are written
before the command is published and never updated.

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE idempotency_keys (
            command_id  text PRIMARY KEY,
            fingerprint text NOT NULL,
            created_at  timestamptz NOT NULL DEFAULT now()
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE idempotency_keys")
