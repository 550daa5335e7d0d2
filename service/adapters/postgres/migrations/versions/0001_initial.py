"""Initial schema: rules, orders and their facts, history, processed commands, outbox, notifications.

Revision ID: 0001
Revises:
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


SCHEMA = """
        CREATE TABLE rules_meta (
            singleton      boolean PRIMARY KEY DEFAULT true CHECK (singleton),
            version        bigint NOT NULL,
            override_roles text[] NOT NULL,
            source_sha256  text,
            loaded_at      timestamptz NOT NULL DEFAULT now()
        );

        CREATE TABLE statuses (
            id              integer PRIMARY KEY,
            code            text NOT NULL UNIQUE,
            name            text NOT NULL,
            order_types     text[] NOT NULL,
            initial         boolean NOT NULL DEFAULT false,
            cancelled       boolean NOT NULL DEFAULT false,
            invoiced        boolean NOT NULL DEFAULT false,
            hidden          boolean NOT NULL DEFAULT false,
            can_override_to boolean NOT NULL DEFAULT false
        );

        CREATE TABLE transitions (
            order_type  text NOT NULL,
            from_status integer NOT NULL REFERENCES statuses (id) ON DELETE CASCADE,
            to_status   integer NOT NULL REFERENCES statuses (id) ON DELETE CASCADE,
            roles       text[] NOT NULL,
            PRIMARY KEY (order_type, from_status, to_status)
        );

        -- status_id is deliberately not a foreign key: a rules reload may drop a status that
        -- orders still hold, and the order must stay readable (the engine reports it).
        CREATE TABLE orders (
            order_id       bigint PRIMARY KEY,
            order_type     text NOT NULL,
            client_id      text,
            status_id      integer NOT NULL,
            version        integer NOT NULL DEFAULT 0,
            payments_total numeric(18, 4) NOT NULL DEFAULT 0,
            created_at     timestamptz NOT NULL DEFAULT now(),
            updated_at     timestamptz NOT NULL DEFAULT now()
        );

        CREATE TABLE order_contacts (
            order_id bigint NOT NULL REFERENCES orders (order_id) ON DELETE CASCADE,
            email    text NOT NULL,
            name     text,
            kind     text NOT NULL CHECK (kind IN ('client', 'stakeholder')),
            PRIMARY KEY (order_id, email)
        );

        CREATE TABLE order_goods_out_notes (
            order_id bigint NOT NULL REFERENCES orders (order_id) ON DELETE CASCADE,
            note_ref text NOT NULL,
            PRIMARY KEY (order_id, note_ref)
        );

        CREATE TABLE order_reservations (
            order_id        bigint NOT NULL REFERENCES orders (order_id) ON DELETE CASCADE,
            reservation_ref text NOT NULL,
            PRIMARY KEY (order_id, reservation_ref)
        );

        CREATE TABLE order_coupons (
            order_id    bigint NOT NULL REFERENCES orders (order_id) ON DELETE CASCADE,
            coupon_code text NOT NULL,
            PRIMARY KEY (order_id, coupon_code)
        );

        CREATE TABLE order_history (
            id           bigserial PRIMARY KEY,
            order_id     bigint NOT NULL REFERENCES orders (order_id) ON DELETE CASCADE,
            version      integer NOT NULL,
            event_id     uuid NOT NULL UNIQUE,
            command_id   text NOT NULL,
            from_status  jsonb NOT NULL,
            to_status    jsonb NOT NULL,
            override     boolean NOT NULL,
            actor        jsonb NOT NULL,
            note_text    text NOT NULL,
            is_public    boolean NOT NULL DEFAULT false,
            file_id      bigint,
            removed_reservations text[] NOT NULL DEFAULT '{}',
            removed_coupons      text[] NOT NULL DEFAULT '{}',
            occurred_at  timestamptz NOT NULL,
            UNIQUE (order_id, version)
        );

        -- the dedupe record: a second insert of the same command id is the duplicate signal
        CREATE TABLE processed_commands (
            command_id   text PRIMARY KEY,
            command_type text NOT NULL,
            outcome      text NOT NULL,
            source       text,
            processed_at timestamptz NOT NULL DEFAULT now()
        );

        -- every message the service emits (events and dead letters) is written here first,
        -- in the transaction that decided it; the relay publishes in id order.
        CREATE TABLE outbox (
            id           bigserial PRIMARY KEY,
            event_id     uuid,
            event_type   text,
            topic        text NOT NULL,
            message_key  bytea,
            payload      bytea NOT NULL,
            headers      jsonb NOT NULL DEFAULT '[]',
            order_id     bigint,
            created_at   timestamptz NOT NULL DEFAULT now(),
            published_at timestamptz
        );
        CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
        CREATE INDEX outbox_created_at ON outbox (created_at);
        CREATE INDEX outbox_order_id ON outbox (order_id);

        CREATE TABLE sent_notifications (
            event_id   uuid NOT NULL,
            recipient  text NOT NULL,
            attempt    integer NOT NULL DEFAULT 1,
            status     text NOT NULL CHECK (status IN ('sent', 'failed')),
            reason     text,
            sent_at    timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (event_id, recipient, attempt)
        );
"""


def _statements(sql: str) -> list[str]:
    # asyncpg prepares each statement, so a script must be sent one statement at a time
    return [stmt for stmt in sql.split(";\n") if stmt.strip()]


def upgrade() -> None:
    for stmt in _statements(SCHEMA):
        op.execute(stmt)


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE sent_notifications, outbox, processed_commands, order_history, order_coupons,
            order_reservations, order_goods_out_notes, order_contacts, orders, transitions,
            statuses, rules_meta;
        """
    )
