"""Read side: the queries behind the HTTP read API, the gateway and the `transitions` / `history` commands.

Who sees what is `service.domain.access`'s to say; the rules come from the face's `RulesCache` (read again only
when their version moved), or, without one (the CLI's single queries), straight from the tables."""

from __future__ import annotations

import json

from service.adapters.postgres import orders as orders_store
from service.adapters.postgres.rules import RulesCache
from service.domain.access import OPERATOR, Viewer, may_see_order, shown
from service.domain.events import event_id_for
from service.domain.model import Actor, RuleSet, Status
from service.domain.rules import availability


def _status_dict(s: Status) -> dict:
    return {
        "id": s.id, "code": s.code, "name": s.name, "order_types": sorted(s.order_types), "initial": s.initial,
        "cancelled": s.cancelled, "invoiced": s.invoiced, "hidden": s.hidden, "can_override_to": s.can_override_to,
    }


async def _rules(conn, cache: RulesCache | None):
    return await (cache if cache is not None else RulesCache()).read(conn)


async def statuses(conn, order_type: str | None = None, rules_cache: RulesCache | None = None) -> list[dict]:
    rules = await _rules(conn, rules_cache)
    if rules is None:
        return []
    return [_status_dict(s) for s in rules.statuses_for(order_type)]


async def transitions(conn, order_id: int, actor: Actor, rules_cache: RulesCache | None = None) -> dict | None:
    """R13 for one order and actor; None when the order does not exist for this actor (R4)."""
    rules = await _rules(conn, rules_cache)
    order = await orders_store.read_order(conn, order_id)
    if rules is None or order is None:
        return None
    found = availability(rules, order, actor)
    if found is None:
        return None
    return {
        "order_id": order_id,
        "order_type": order.order_type,
        "version": order.version,
        "current": found.current.ref(),
        "transitions": [s.ref() for s in found.transitions],
        "overrides": [s.ref() for s in found.overrides],
        "can_change_status": bool(found.transitions),
        "can_override_status": found.can_override and bool(found.overrides),
    }


async def history(conn, order_id: int, viewer: Viewer = OPERATOR, *, after_version: int = 0,
                  limit: int | None = None, rules_cache: RulesCache | None = None) -> dict | None:
    """The order's changes and notes as `viewer` may see them (`service.domain.access`); None when there is no
    such order for `viewer` (R4). The default viewer is the operator (the CLI): everything.

    Paged when `limit` is given: the entries after `after_version`, and `next_cursor` (the version to pass on)
    while more follow."""
    order = await orders_store.read_order(conn, order_id)
    if order is None or not may_see_order(viewer, order):
        return None
    rules = await _rules(conn, rules_cache)
    current = rules.status(order.status_id) if rules else None
    entries = await orders_store.fetch_history(conn, order_id, after_version=after_version,
                                               limit=None if limit is None else limit + 1)
    more = limit is not None and len(entries) > limit
    entries = entries[:limit] if limit is not None else entries
    found = {
        "order_id": order_id,
        "order_type": order.order_type,
        "version": order.version,
        "status": current.ref() if current else {"id": order.status_id},
        "history": [shown(viewer, entry) for entry in entries],
    }
    if limit is not None:
        found["next_cursor"] = str(entries[-1]["version"]) if more else None
    return found


async def command_outcome(conn, command_id: str, max_events: int) -> dict | None:
    """What became of a command: its processed record and the events it produced (None: not seen yet).

    A command's events have deterministic ids (event_id_for(command_id, n)), so they are found in the
    outbox without scanning it; `max_events` bounds n (a batch has at most max_batch_items + 1 events)."""
    record = await conn.fetchrow(
        "SELECT command_type, outcome, processed_at FROM processed_commands WHERE command_id = $1", command_id
    )
    if record is None:
        return None
    ids = [event_id_for(command_id, n) for n in range(max_events)]
    rows = await conn.fetch("SELECT payload FROM outbox WHERE event_id = ANY($1::uuid[]) ORDER BY id", ids)
    return {
        "command_id": command_id,
        "command_type": record["command_type"],
        "outcome": record["outcome"],
        "processed_at": record["processed_at"].isoformat(),
        "events": [json.loads(bytes(r["payload"])) for r in rows],
    }


class PostgresReadViews:
    """The views above over a pool (a connection per call) and one rules cache, as the read side's `ReadViews`
    port (`service/domain/read_views.py`); it passes `tests/helpers/read_views_contract.py`. The entrypoint
    builds one per face (its own cache unless given one), so every read of that face shares the cached rules."""

    def __init__(self, pool, rules_cache: RulesCache | None = None) -> None:
        self.pool = pool
        self.rules_cache = rules_cache if rules_cache is not None else RulesCache()

    async def rules(self) -> RuleSet | None:
        async with self.pool.acquire() as conn:
            return await self.rules_cache.read(conn)

    async def statuses(self, order_type: str | None = None) -> list[dict]:
        async with self.pool.acquire() as conn:
            return await statuses(conn, order_type, self.rules_cache)

    async def transitions(self, order_id: int, actor: Actor) -> dict | None:
        async with self.pool.acquire() as conn:
            return await transitions(conn, order_id, actor, self.rules_cache)

    async def history(self, order_id: int, viewer: Viewer, *, after_version: int = 0,
                      limit: int | None = None) -> dict | None:
        async with self.pool.acquire() as conn:
            return await history(conn, order_id, viewer, after_version=after_version, limit=limit,
                                 rules_cache=self.rules_cache)
