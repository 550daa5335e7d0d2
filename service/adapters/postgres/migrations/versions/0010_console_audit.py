"""Console audit, sessions and one-time sign-in links (issue 21).

* `console_audit`: every console action (redrive, outbox retry, email resend), who did it (the verified
  principal's sub, role and name), when, what, on how many, and the result. Written by the console in the
  request that acted, after the action's use case returned (or failed); the Audit page lists it newest first.
* `console_sessions`: a signed-in browser. The cookie holds a random session id; the table holds only its
  SHA-256 and the principal the token proved, expiring with the token. No token is kept at rest.
* `console_sign_in_links`: a one-time sign-in link (`orderstatus console link`, `make dev`): the SHA-256 of
  its code and the principal of the token it was made from; it is deleted when exchanged for a session, and
  it is good for a few minutes only.
* `orders (client_id)`: the Order page's search by client id.

Revision ID: 0010
Revises: 0009
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


STATEMENTS = [
    """
    CREATE TABLE console_audit (
        id          bigserial PRIMARY KEY,
        at          timestamptz NOT NULL DEFAULT now(),
        actor_sub   text NOT NULL,
        actor_role  text NOT NULL,
        actor_name  text,
        action      text NOT NULL,
        target      text NOT NULL,
        count       integer NOT NULL DEFAULT 0,
        result      text NOT NULL,
        detail      jsonb NOT NULL DEFAULT '{}'
    )
    """,
    "CREATE INDEX console_audit_at ON console_audit (at DESC)",
    """
    CREATE TABLE console_sessions (
        id_sha256   text PRIMARY KEY,
        sub         text NOT NULL,
        role        text NOT NULL,
        name        text,
        client_id   text,
        created_at  timestamptz NOT NULL DEFAULT now(),
        expires_at  timestamptz NOT NULL
    )
    """,
    "CREATE INDEX console_sessions_expires_at ON console_sessions (expires_at)",
    """
    CREATE TABLE console_sign_in_links (
        code_sha256      text PRIMARY KEY,
        sub              text NOT NULL,
        role             text NOT NULL,
        name             text,
        client_id        text,
        session_expires  timestamptz NOT NULL,
        expires_at       timestamptz NOT NULL
    )
    """,
    "CREATE INDEX orders_client_id ON orders (client_id)",
]


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP INDEX orders_client_id")
    op.execute("DROP TABLE console_sign_in_links")
    op.execute("DROP TABLE console_sessions")
    op.execute("DROP TABLE console_audit")
