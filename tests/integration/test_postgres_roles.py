"""Least privilege on a real Postgres (issue 23, item 6): the grants of deploy/postgres-roles.sql and
deploy/postgres-grants.sql give each process's role what its process does and nothing more."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from uuid import uuid4

import asyncpg
import pytest

from service.adapters.postgres import dead_letter_index, heartbeats, notifications, positions, views
from service.adapters.postgres.activity import last_hour
from service.adapters.postgres.connection import connect
from service.adapters.postgres.dead_letter_index import IndexedLetter
from service.adapters.postgres.heartbeats import Beat
from service.adapters.postgres.orders import fetch_contacts, read_order
from service.adapters.postgres.outbox_events import stored_event
from service.adapters.postgres.outbox_ops import parked, stats, unpark
from service.adapters.postgres.rules import fetch_rules
from service.console import store
from service.domain.model import Actor, Principal
from service.runtime.heartbeat import identity
from tests.helpers.database import seed_database, url_of

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
ROLES = ("orderstatus_migrator", "orderstatus_app", "orderstatus_worker", "orderstatus_notifier",
         "orderstatus_gateway", "orderstatus_console")


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
    return await _may_do(conn, role, lambda c: c.execute(statement))


async def _may_do(conn, role: str, work: Callable[[asyncpg.Connection], Awaitable], setup: str | None = None) -> bool:
    """Whether `role` may do `work` (the service's own functions on the connection), run and rolled back;
    `setup` runs first, as the owner of the tables."""
    tx = conn.transaction()
    await tx.start()
    try:
        if setup:
            await conn.execute(setup)
        await conn.execute(f"SET LOCAL ROLE {role}")
        await work(conn)
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


# ---- the third wave's tables (migrations 0008-0010), through the functions the processes call

async def _positions(conn) -> None:
    """The worker's and the notifier's progress (issue 24): advance (a new row, then the conflict path), read."""
    await positions.advance(conn, "orderstatus-worker", {("order-status.commands", 0): 5})
    await positions.advance(conn, "orderstatus-worker", {("order-status.commands", 0): 7})
    assert await positions.read(conn, "orderstatus-worker", [("order-status.commands", 0)]) == {
        ("order-status.commands", 0): 7}


async def _heartbeat(conn) -> None:
    """runtime/heartbeat.py: beat (insert, then upsert), the hourly forget, the stop mark."""
    who = identity("worker")
    beat = Beat(ready=True, partitions={"order-status.commands": [0, 1]}, state={"database": True})
    await heartbeats.beat(conn, who, beat)
    await heartbeats.beat(conn, who, beat)
    await heartbeats.forget_old(conn)
    await heartbeats.mark_stopped(conn, who.process_id)


async def _processes(conn) -> None:
    """The console's Health page lists every process's row."""
    await _heartbeat(conn)
    assert [p.status for p in await heartbeats.processes(conn)] == ["stopped"]


def _letter(offset: int) -> IndexedLetter:
    return IndexedLetter(topic="order-status.commands.dlq", partition=0, offset=offset,
                         written_at=datetime.now(timezone.utc), reason="invalid_command", message="bad",
                         command_id="cmd-1", order_id=1029, original_topic="order-status.commands",
                         original_partition=0, original_offset=offset, key=b"1029", size=10, truncated=False,
                         redrive_count=0)


async def _dead_letter_index(conn) -> None:
    """The console's indexer (upsert, prune below the first stored offset) and its Dead letters page."""
    topic = "order-status.commands.dlq"
    await dead_letter_index.upsert(conn, [_letter(3), _letter(4)])
    await dead_letter_index.upsert(conn, [_letter(4)])
    assert (await dead_letter_index.page(conn, topic)).letters
    assert await dead_letter_index.get(conn, topic, 0, 4) is not None
    assert await dead_letter_index.count(conn, topic) == 2
    assert await dead_letter_index.counts_by_reason(conn, topic) == {"invalid_command": 2}
    assert await dead_letter_index.positions(conn, topic) == [(0, 3), (0, 4)]
    assert await dead_letter_index.forget_before(conn, topic, {0: 4}) == 1
    await last_hour(conn, topic)


MANAGER = Principal(sub="ops-1", role="manager", name="Ops")


async def _sessions_links_audit(conn) -> None:
    """Sign-in (a one-time link spent for a session), sign-out, and an audited action listed on the Audit page."""
    expires = datetime.now(timezone.utc) + timedelta(hours=1)
    code = await store.create_link(conn, MANAGER, expires)
    assert await store.use_link(conn, code) is not None
    session_id = await store.create_session(conn, MANAGER, expires)
    assert await store.session(conn, session_id) is not None
    await store.end_session(conn, session_id)
    await store.audit(conn, MANAGER, "outbox.retry", "1", 1, "ok", {"ids": [1]})
    assert [e["action"] for e in await store.audit_entries(conn)] == ["outbox.retry"]


async def _console_pages(conn) -> None:
    """The Order, Rules and Outbox pages' reads."""
    event_ids = [str(uuid4())]
    assert await store.find_orders(conn, "1029") == [1029]
    await store.find_orders(conn, event_ids[0])
    await store.contacts(conn, 1029)
    await store.emails(conn, event_ids)
    await store.trace_ids(conn, event_ids)
    await store.rejections(conn, 1029)
    await store.rules_meta(conn)
    assert await read_order(conn, 1029) is not None
    await views.history(conn, 1029)
    await views.transitions(conn, 1029, Actor(id="ops-1", role="manager"))
    await fetch_rules(conn)
    await stats(conn)
    await parked(conn)


PARKED_ROW = ("INSERT INTO outbox (event_id, event_type, topic, message_key, payload, order_id, parked_at, park_reason) "
              "VALUES (gen_random_uuid(), 'OrderStatusChanged', 'order-status.events', '1029', '{}', 1029, now(), 'test')")


async def _outbox_retry(conn) -> None:
    """The console's outbox retry: the parked rows its page lists, put back in line (`outbox retry`)."""
    ids = [row.id for row in await parked(conn)]
    assert ids and await unpark(conn, ids) == ids


async def _resend(conn) -> None:
    """An email resend (notifier/resend.py): the stored event, the recipients, each attempt claimed, finished,
    noted in doubt or released."""
    event_id = uuid4()
    await stored_event(conn, event_id)
    await fetch_contacts(conn, 1029)
    attempt = await notifications.claim_next(conn, event_id, "a@example.com")
    await notifications.finish(conn, event_id, "a@example.com", attempt, notifications.SENT, "250 ok")
    attempt = await notifications.claim_next(conn, event_id, "a@example.com")
    await notifications.note_in_doubt(conn, event_id, "a@example.com", attempt, "timeout")
    await notifications.release(conn, event_id, "a@example.com", attempt)


class TestEachProcessDoesItsWorkOnTheNewTables:
    @pytest.mark.parametrize(("role", "work", "setup"), [
        ("orderstatus_worker", _positions, None),
        ("orderstatus_notifier", _positions, None),
        ("orderstatus_worker", _heartbeat, None),
        ("orderstatus_notifier", _heartbeat, None),
        ("orderstatus_gateway", _heartbeat, None),
        ("orderstatus_console", _processes, None),
        ("orderstatus_console", _dead_letter_index, None),
        ("orderstatus_console", _sessions_links_audit, None),
        ("orderstatus_console", _console_pages, None),
        ("orderstatus_console", _outbox_retry, PARKED_ROW),
        ("orderstatus_console", _resend, None),
    ], ids=lambda value: getattr(value, "__name__", None) if callable(value) else
        ("parked_row" if value == PARKED_ROW else None))
    async def test_allowed(self, granted, role, work, setup):
        """The statements the process's code runs on the new tables (and the console's actions) are allowed."""
        assert await _may_do(granted, role, work, setup)

    @pytest.mark.parametrize(("role", "statement"), [
        ("orderstatus_worker", "SELECT nextval('outbox_id_seq')"),
        ("orderstatus_worker", "SELECT nextval('order_history_id_seq')"),
        ("orderstatus_console", "SELECT nextval('outbox_id_seq')"),
        ("orderstatus_console", "SELECT nextval('console_audit_id_seq')"),
    ])
    async def test_inserts_take_their_ids(self, granted, role, statement):
        """A bigserial insert draws from its sequence: the roles that insert there may."""
        assert await _may(granted, role, statement)


class TestNoRoleHasMoreOnTheNewTables:
    @pytest.mark.parametrize(("role", "statement"), [
        ("orderstatus_console", "UPDATE orders SET version = version"),
        ("orderstatus_console", "UPDATE transitions SET from_status = from_status"),
        ("orderstatus_console", "DELETE FROM statuses"),
        ("orderstatus_console", "DELETE FROM order_history"),
        ("orderstatus_console", "UPDATE processed_commands SET outcome = outcome"),
        ("orderstatus_console", "UPDATE outbox SET published_at = now()"),
        ("orderstatus_console", "SELECT * FROM idempotency_keys"),
        ("orderstatus_console", "INSERT INTO consumer_positions VALUES ('g', 't', 0, 0)"),
        ("orderstatus_console", "UPDATE console_audit SET result = 'ok'"),
        ("orderstatus_console", "DELETE FROM console_audit"),
        ("orderstatus_console", "TRUNCATE dead_letter_index"),
        ("orderstatus_console", "SELECT nextval('order_history_id_seq')"),
        ("orderstatus_gateway", "INSERT INTO consumer_positions VALUES ('g', 't', 0, 0)"),
        ("orderstatus_gateway", "UPDATE consumer_positions SET next_offset = 0"),
        ("orderstatus_gateway", "SELECT * FROM consumer_positions"),
        ("orderstatus_gateway", "SELECT kind, host, pid FROM process_heartbeats"),
        ("orderstatus_gateway", "SELECT * FROM dead_letter_index"),
        ("orderstatus_gateway", "SELECT * FROM console_sessions"),
        ("orderstatus_gateway", "SELECT nextval('outbox_id_seq')"),
        ("orderstatus_worker", "DELETE FROM consumer_positions"),
        ("orderstatus_worker", "SELECT * FROM dead_letter_index"),
        ("orderstatus_worker", "INSERT INTO console_audit (actor_sub, actor_role, action, target, result) "
                               "VALUES ('s', 'manager', 'a', 't', 'ok')"),
        ("orderstatus_worker", "SELECT * FROM console_sign_in_links"),
        ("orderstatus_worker", "SELECT nextval('console_audit_id_seq')"),
        ("orderstatus_notifier", "DELETE FROM consumer_positions"),
        ("orderstatus_notifier", "SELECT * FROM console_sessions"),
        ("orderstatus_notifier", "SELECT nextval('outbox_id_seq')"),
    ])
    async def test_refused(self, granted, role, statement):
        """What no process's code does is refused (the console cannot UPDATE orders, nor rewrite its audit)."""
        assert not await _may(granted, role, statement)
