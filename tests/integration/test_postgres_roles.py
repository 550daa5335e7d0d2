"""Least privilege on a real Postgres (issue 23, item 6): the grants of deploy/postgres-roles.sql and
deploy/postgres-grants.sql give each process's role what its process does and nothing more."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from service.adapters.postgres.connection import connect
from tests.helpers.database import seed_database, url_of

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
ROLES = ("orderstatus_migrator", "orderstatus_app", "orderstatus_worker", "orderstatus_notifier",
         "orderstatus_gateway")


@pytest.fixture
async def granted(settings):
    """The test database migrated and seeded, the roles present, both files' grants run; yields a connection."""
    url = url_of(settings)
    await seed_database(url)
    conn = await connect(url)
    for role in ROLES:  # roles are cluster-wide: made once, NOLOGIN (the tests SET ROLE to them)
        member = " IN ROLE orderstatus_app" if role not in ("orderstatus_migrator", "orderstatus_app") else ""
        await conn.execute(f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN "
                           f"CREATE ROLE {role} NOLOGIN{member}; END IF; END $$")
    roles_sql = (DEPLOY / "postgres-roles.sql").read_text().split("\\connect orderstatus", 1)[1]
    await conn.execute(roles_sql)
    await conn.execute((DEPLOY / "postgres-grants.sql").read_text())
    try:
        yield conn
    finally:
        await conn.close()


async def _may(conn, role: str, statement: str) -> bool:
    """Whether `role` may run `statement` (run and rolled back)."""
    tx = conn.transaction()
    await tx.start()
    try:
        await conn.execute(f"SET LOCAL ROLE {role}")
        await conn.execute(statement)
        return True
    except asyncpg.InsufficientPrivilegeError:
        return False
    finally:
        await tx.rollback()


IDEM = "INSERT INTO idempotency_keys (command_id, fingerprint) VALUES ('idem-x', 'f')"


class TestEachRoleHasWhatItsProcessNeeds:
    @pytest.mark.parametrize(("role", "statement"), [
        ("orderstatus_gateway", "SELECT * FROM orders"),
        ("orderstatus_gateway", "SELECT * FROM transitions"),
        ("orderstatus_gateway", "SELECT * FROM processed_commands"),
        ("orderstatus_gateway", "SELECT * FROM outbox"),
        ("orderstatus_gateway", IDEM),
        ("orderstatus_worker", "UPDATE orders SET version = version WHERE order_id = 1029"),
        ("orderstatus_worker", "DELETE FROM order_reservations WHERE order_id = 1029"),
        ("orderstatus_worker", "SELECT * FROM transitions"),
        ("orderstatus_worker", "SELECT version FROM rules_meta FOR SHARE"),
        ("orderstatus_worker", "SELECT 1 FROM orders WHERE order_id = 1029 FOR UPDATE"),
        ("orderstatus_worker", "INSERT INTO outbox_cursor SELECT * FROM outbox_cursor WHERE false"),
        ("orderstatus_worker", "DELETE FROM sent_notifications WHERE false"),
        ("orderstatus_worker", "DELETE FROM idempotency_keys WHERE false"),
        ("orderstatus_notifier", "SELECT * FROM order_contacts"),
        ("orderstatus_notifier", "DELETE FROM sent_notifications WHERE false"),
    ])
    async def test_allowed(self, granted, role, statement):
        """What the process does is allowed."""
        assert await _may(granted, role, statement)


class TestNoRoleHasMore:
    @pytest.mark.parametrize(("role", "statement"), [
        ("orderstatus_gateway", "UPDATE transitions SET from_status = from_status"),
        ("orderstatus_gateway", "UPDATE orders SET version = version"),
        ("orderstatus_gateway", "DELETE FROM order_history"),
        ("orderstatus_gateway", "INSERT INTO outbox SELECT * FROM outbox WHERE false"),
        ("orderstatus_gateway", "SELECT * FROM sent_notifications"),
        ("orderstatus_gateway", "SELECT * FROM order_contacts"),
        ("orderstatus_gateway", "UPDATE idempotency_keys SET fingerprint = 'x'"),
        ("orderstatus_worker", "UPDATE transitions SET from_status = from_status"),
        ("orderstatus_worker", "DELETE FROM statuses"),
        ("orderstatus_worker", "UPDATE rules_meta SET version = version"),
        ("orderstatus_worker", "UPDATE sent_notifications SET status = status"),
        ("orderstatus_worker", "CREATE TABLE intruder (id int)"),
        ("orderstatus_notifier", "UPDATE orders SET version = version"),
        ("orderstatus_notifier", "SELECT * FROM outbox"),
        ("orderstatus_notifier", "TRUNCATE sent_notifications"),
    ])
    async def test_refused(self, granted, role, statement):
        """Anything else is refused by the server (the gateway's role cannot UPDATE transitions, for one)."""
        assert not await _may(granted, role, statement)
