"""Checking a run and matching events to commands.

From the topics: each bench command has exactly one outcome event, an `OrderStatusChanged` (a
rejection means a command was applied out of order or twice: its `expected_status` no longer held);
per order, events appear in the events topic in strictly increasing `version` and in the order the
commands were produced. From Postgres: the bench orders' history has one row per command, and each
order's version went up by exactly its number of commands. Duplicate events (the relay is
at-least-once) are counted and reported, not failed: no fault is injected, so any is worth a look."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from bench.topics import Record
from bench.workload import FIRST_ORDER, Command


@dataclass
class Matched:
    latencies_ms: list[float] = field(default_factory=list)
    first_command_ms: int | None = None
    last_event_ms: int | None = None
    checks: dict = field(default_factory=dict)


def _load(value: bytes | None) -> dict:
    try:
        data = json.loads(value or b"")
        return data if isinstance(data, dict) else {}
    except ValueError:
        return {}


def match(commands: list[Command], command_records: list[Record], event_records: list[Record]) -> Matched:
    wanted = {c.command_id: c for c in commands}
    sent_ms: dict[str, int] = {}
    for r in command_records:
        cid = _load(r.value).get("command_id")
        if cid in wanted:
            sent_ms[cid] = r.timestamp_ms
    seen_events: set[str] = set()
    event_ms: dict[str, int] = {}
    duplicates = rejected = 0
    reasons: dict[str, int] = {}
    per_order: dict[int, list[tuple[int, str]]] = {}
    for r in event_records:  # partition, offset order: an order's events share a partition
        event = _load(r.value)
        cid = event.get("command_id")
        if cid not in wanted:
            continue
        if event.get("event_id") in seen_events:
            duplicates += 1
            continue
        seen_events.add(event.get("event_id"))
        if event.get("type") != "OrderStatusChanged":
            rejected += 1
            reasons[str(event.get("reason"))] = reasons.get(str(event.get("reason")), 0) + 1
            continue
        if cid in event_ms:  # a second, different change event for one command: applied twice
            duplicates += 1
            continue
        event_ms[cid] = r.timestamp_ms
        per_order.setdefault(event["order_id"], []).append((event["version"], cid))

    produced_order: dict[int, list[str]] = {}
    for c in commands:
        produced_order.setdefault(c.order_id, []).append(c.command_id)
    out_of_order = 0
    for order_id, seq in per_order.items():
        versions = [v for v, _ in seq]
        if any(b <= a for a, b in zip(versions, versions[1:])) or [cid for _, cid in seq] != produced_order[order_id]:
            out_of_order += 1

    matched = Matched()
    for cid, ms in event_ms.items():
        if cid in sent_ms:
            matched.latencies_ms.append(ms - sent_ms[cid])
    if sent_ms:
        matched.first_command_ms = min(sent_ms.values())
    if event_ms:
        matched.last_event_ms = max(event_ms.values())
    missing = len(wanted) - len(event_ms)
    matched.checks = {
        "commands": len(wanted),
        "commands_read_back": len(sent_ms),
        "changed_events": len(event_ms),
        "missing_events": missing,
        "rejected": rejected,
        "rejection_reasons": reasons,
        "orders_out_of_order": out_of_order,
        "duplicate_events": duplicates,
        "negative_latencies": sum(1 for x in matched.latencies_ms if x < 0),
    }
    return matched


async def check_database(conn, commands: list[Command]) -> dict:
    """One history row per command, and every order's version up by exactly its number of commands."""
    expected: dict[int, int] = {}
    for c in commands:
        expected[c.order_id] = expected.get(c.order_id, 0) + 1
    try:
        rows, distinct = await conn.fetchrow(
            "SELECT count(*), count(DISTINCT command_id) FROM order_history WHERE order_id >= $1", FIRST_ORDER)
        versions = {r["order_id"]: r["version"] for r in await conn.fetch(
            "SELECT order_id, version FROM orders WHERE order_id >= $1", FIRST_ORDER)}
    except Exception as exc:  # the schema may have moved on: say so rather than fail the figures
        return {"db_error": repr(exc)}
    wrong = sum(1 for oid, n in expected.items() if versions.get(oid) != n)
    return {"history_rows": rows, "history_distinct_commands": distinct, "orders_wrong_version": wrong}


def passed(checks: dict) -> bool:
    return (checks.get("missing_events") == 0 and checks.get("rejected") == 0
            and checks.get("orders_out_of_order") == 0 and checks.get("commands_read_back") == checks.get("commands")
            and "db_error" not in checks
            and checks.get("history_rows") == checks.get("commands") == checks.get("history_distinct_commands")
            and checks.get("orders_wrong_version") == 0)
