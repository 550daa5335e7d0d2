"""The console's own tables (sessions, one-time sign-in links, the audit) and the read queries of its Order
page that the read API has no view for (search by command, event or client id; an order's emails, rejected
commands and trace ids). Plain SQL over the pool the entrypoint opened; no driver is imported here."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from service.console.policy import digest, new_secret
from service.domain.events import event_id_for
from service.domain.model import Principal

LINK_TTL = timedelta(minutes=10)  # a one-time sign-in link is good for this long (and once)


@dataclass(frozen=True)
class Session:
    principal: Principal
    expires_at: datetime


def _principal(row) -> Principal:
    return Principal(sub=row["sub"], role=row["role"], client_id=row["client_id"], name=row["name"])


async def create_session(pool, principal: Principal, expires_at: datetime) -> str:
    """A new session for this principal until `expires_at` (the token's expiry); returns the cookie's id."""
    session_id = new_secret()
    await pool.execute(
        "INSERT INTO console_sessions (id_sha256, sub, role, name, client_id, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
        digest(session_id), principal.sub, principal.role, principal.name, principal.client_id, expires_at)
    return session_id


async def session(pool, session_id: str) -> Session | None:
    row = await pool.fetchrow("SELECT * FROM console_sessions WHERE id_sha256 = $1 AND expires_at > now()",
                              digest(session_id))
    return None if row is None else Session(_principal(row), row["expires_at"])


async def end_session(pool, session_id: str) -> None:
    await pool.execute("DELETE FROM console_sessions WHERE id_sha256 = $1 OR expires_at < now()", digest(session_id))


async def purge_expired(pool, limit: int = 1000) -> int:
    """Delete at most `limit` expired sessions and as many expired sign-in links (bounded: a backlog goes over
    several calls, each a short statement); returns how many rows went."""
    sessions = await pool.fetchval(
        "WITH gone AS (DELETE FROM console_sessions WHERE id_sha256 IN (SELECT id_sha256 FROM console_sessions "
        "WHERE expires_at < now() LIMIT $1) RETURNING 1) SELECT count(*) FROM gone", limit)
    links = await pool.fetchval(
        "WITH gone AS (DELETE FROM console_sign_in_links WHERE code_sha256 IN (SELECT code_sha256 "
        "FROM console_sign_in_links WHERE expires_at < now() LIMIT $1) RETURNING 1) SELECT count(*) FROM gone", limit)
    return sessions + links


async def create_link(pool, principal: Principal, session_expires: datetime, ttl: timedelta = LINK_TTL) -> str:
    """A one-time sign-in code for this principal (the token it came from is not kept)."""
    code = new_secret()
    await pool.execute(
        "INSERT INTO console_sign_in_links (code_sha256, sub, role, name, client_id, session_expires, expires_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, now() + $7::interval)",
        digest(code), principal.sub, principal.role, principal.name, principal.client_id, session_expires, ttl)
    return code


async def use_link(pool, code: str) -> Session | None:
    """Spend a sign-in code: its principal and session expiry, once; None when unknown, used or expired."""
    row = await pool.fetchrow(
        "DELETE FROM console_sign_in_links WHERE code_sha256 = $1 RETURNING *, expires_at > now() AS valid",
        digest(code))
    if row is None or not row["valid"]:
        return None
    return Session(_principal(row), row["session_expires"])


async def audit(pool, principal: Principal, action: str, target: str, count: int, result: str,
                detail: dict | None = None) -> None:
    await pool.execute(
        "INSERT INTO console_audit (actor_sub, actor_role, actor_name, action, target, count, result, detail) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb)",
        principal.sub, principal.role, principal.name, action, target, count, result,
        json.dumps(detail or {}, default=str))


async def audit_entries(pool, limit: int = 200, before: int | None = None) -> list[dict]:
    rows = await pool.fetch("SELECT * FROM console_audit WHERE ($1::bigint IS NULL OR id < $1) ORDER BY id DESC "
                            "LIMIT $2", before, limit)
    return [{**dict(r), "detail": json.loads(r["detail"]) if isinstance(r["detail"], str) else r["detail"]}
            for r in rows]


# ---- the Order page ----

async def find_orders(pool, text: str, limit: int = 50, max_events: int = 52) -> list[int]:
    """Order ids for a search: an order id, a command id, an event id (changes and rejections) or a client id.

    A command's events have deterministic ids (`event_id_for(command_id, n)`, n < `max_events`), so a command
    id is looked up through the history's unique event id index; the outbox (a rejection never reaches the
    history) is asked only when the history has none."""
    text = text.strip()
    found: list[int] = []
    if text.isascii() and text.isdigit() and len(text) < 19:
        if await pool.fetchval("SELECT 1 FROM orders WHERE order_id = $1", int(text)):
            found.append(int(text))
    event_ids = [event_id_for(text, n) for n in range(max_events)] if 0 < len(text) <= 200 else []
    try:
        event_ids.append(UUID(text))  # an event id (a command id is often a UUID too: both are looked up)
    except ValueError:
        pass
    if event_ids:
        rows = await pool.fetch("SELECT DISTINCT order_id FROM order_history WHERE event_id = ANY($1::uuid[])",
                                event_ids)
        if not rows:
            rows = await pool.fetch("SELECT DISTINCT order_id FROM outbox WHERE event_id = ANY($1::uuid[]) "
                                    "AND order_id IS NOT NULL", event_ids)
        found += sorted(r["order_id"] for r in rows)
    found += [r["order_id"] for r in await pool.fetch(
        "SELECT order_id FROM orders WHERE client_id = $1 ORDER BY order_id LIMIT $2", text, limit)]
    return list(dict.fromkeys(found))[:limit]


async def contacts(pool, order_id: int) -> list[dict]:
    rows = await pool.fetch("SELECT email, name, kind FROM order_contacts WHERE order_id = $1 ORDER BY kind, email",
                            order_id)
    return [dict(r) for r in rows]


async def emails(pool, event_ids: list[str]) -> dict[str, list[dict]]:
    """Per event id, the emails it sent: recipient, attempt, when, and sent / failed / in doubt (`sending`)."""
    rows = await pool.fetch(
        "SELECT event_id::text AS event_id, recipient, attempt, status, reason, sent_at FROM sent_notifications "
        "WHERE event_id = ANY($1::uuid[]) ORDER BY sent_at, recipient, attempt", event_ids)
    found: dict[str, list[dict]] = {}
    for r in rows:
        state = "in doubt" if r["status"] == "sending" else r["status"]
        found.setdefault(r["event_id"], []).append({**dict(r), "state": state})
    return found


def _traceparent(headers) -> str | None:
    for name, value in (json.loads(headers) if isinstance(headers, str) else headers or []):
        if name == "traceparent" and value is not None:
            text = bytes.fromhex(value).decode("ascii", "replace")
            parts = text.split("-")
            return parts[1] if len(parts) == 4 else text
    return None


async def trace_ids(pool, event_ids: list[str]) -> dict[str, str]:
    """The trace id (from the event's `traceparent`) per event id, while its outbox row is kept."""
    rows = await pool.fetch("SELECT event_id::text AS event_id, headers FROM outbox WHERE event_id = ANY($1::uuid[])",
                            event_ids)
    return {r["event_id"]: t for r in rows if (t := _traceparent(r["headers"])) is not None}


async def rejections(pool, order_id: int, limit: int = 200) -> list[dict]:
    """The order's rejected commands, newest first, with reason and message (from their outcome events)."""
    rows = await pool.fetch(
        "SELECT event_id::text AS event_id, payload, headers, created_at FROM outbox "
        "WHERE order_id = $1 AND event_type = 'OrderStatusChangeRejected' ORDER BY id DESC LIMIT $2", order_id, limit)
    found = []
    for r in rows:
        try:
            event = json.loads(bytes(r["payload"]))
        except ValueError:
            continue
        found.append({"event_id": r["event_id"], "command_id": event.get("command_id"),
                      "reason": event.get("reason"), "message": event.get("message"),
                      "requested_status": event.get("requested_status"), "actor": event.get("actor") or {},
                      "occurred_at": event.get("occurred_at"), "trace_id": _traceparent(r["headers"])})
    return found


async def rules_meta(pool) -> dict | None:
    row = await pool.fetchrow("SELECT version, loaded_at, source_sha256, override_roles FROM rules_meta")
    return None if row is None else dict(row)
