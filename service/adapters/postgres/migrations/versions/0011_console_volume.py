"""Console at volume (issue 21, the console scenario of `make bench`): two outbox indexes its pages lacked.

* `outbox (event_id)`: the Order page reads each change's `traceparent` from its event's outbox row, and
  the search by command or event id falls back to the outbox for rejections; both looked rows up by event id
  with no index, so every Order page read the whole outbox (its published rows stay until retention).
* `outbox (held_behind)`, partial: the Outbox page counts the rows held behind each parked row; without it
  each parked row cost a scan of the outbox. Few rows are ever held, so the index is small.

Not `CONCURRENTLY`: alembic runs each revision in a transaction (`transactional_ddl`), where Postgres
refuses it. A plain build blocks writes to the outbox while it runs — the workers wait, they do not fail —
which takes seconds on an outbox that retention keeps to days of events. On a larger outbox, build them
beforehand without blocking (`CREATE INDEX CONCURRENTLY outbox_event_id ON outbox (event_id) WHERE event_id
IS NOT NULL`, and the same for `outbox_held_behind`): `IF NOT EXISTS` makes this revision skip them then.

Revision ID: 0011
Revises: 0010
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE INDEX IF NOT EXISTS outbox_event_id ON outbox (event_id) WHERE event_id IS NOT NULL")
    op.execute("CREATE INDEX IF NOT EXISTS outbox_held_behind ON outbox (held_behind) WHERE held_behind IS NOT NULL")


def downgrade() -> None:
    op.execute("DROP INDEX outbox_held_behind")
    op.execute("DROP INDEX outbox_event_id")
