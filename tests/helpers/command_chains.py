"""Chains of manager commands with `expected_status`, and the proof that each was applied exactly once, in order.

The orders alternate Confirmed -> OnHold -> Confirmed …, so each command succeeds only when it is
applied exactly once and in partition order; a lost, doubled or reordered command shows up as a
`stale_status` rejection, a wrong version or a missing event. The worker fault and scale-out tests
stream these chains and break things meanwhile (DESIGN §7.3, §7.4, §7.6, §7.7)."""

from __future__ import annotations

from collections import defaultdict

from service.runtime.settings import Settings
from tests.helpers.commands import change
from tests.helpers.database import UNPUBLISHED, fetch, fetchval
from tests.helpers.waiting import wait_until

CONFIRMED, ON_HOLD = 2, 4

# The scale-out and rebalance tests' orders: two on each partition of a four-partition commands topic (murmur2
# of the order id, the producer's default partitioner), so every member of a group has work to do.
PARTITIONS = 4
FOUR_PARTITION_ORDER_IDS = [7002, 7003, 7015, 7020, 7001, 7004, 7006, 7007]


def processed_by(worker) -> int:
    """How many commands a worker process has logged as processed."""
    return worker.text().count('"command processed"')


def chain_orders(order_ids: list[int]) -> list[dict]:
    """SO orders in Confirmed with nothing that could block a change (the start of every chain)."""
    return [{"order_id": oid, "order_type": "SO", "status": "Confirmed", "client_id": f"c-{oid}",
             "contacts": [], "payments_total": "0.00"} for oid in order_ids]


def alternating(order_ids: list[int], per_order: int, start: int = 0) -> list[dict]:
    """`per_order` manager commands per order, interleaved across orders; each only valid in order."""
    commands = []
    for i in range(start, start + per_order):
        for oid in order_ids:
            to, expected = (ON_HOLD, CONFIRMED) if i % 2 == 0 else (CONFIRMED, ON_HOLD)
            commands.append(change(oid, to, role="manager", expected_status=expected, notify=False,
                                   note={"text": f"step {i}"}))
    return commands


async def processed_count(settings: Settings) -> int:
    return await fetchval(settings, "SELECT count(*) FROM processed_commands")


async def wait_processed(settings: Settings, at_least: int, timeout: float = 30.0) -> int:
    """Until at least `at_least` commands have a processed record; returns how many have."""

    async def probe():
        n = await processed_count(settings)
        return n if n >= at_least else 0

    return await wait_until(probe, timeout, f"{at_least} processed commands")


async def unpublished(settings: Settings) -> int:
    return await fetchval(settings, f"SELECT count(*) FROM outbox WHERE {UNPUBLISHED}")


async def wait_outbox_drained(settings: Settings, timeout: float = 10.0) -> None:
    """Until every outbox row is published."""

    async def drained():
        return await unpublished(settings) == 0

    await wait_until(drained, timeout, "the outbox to drain")


def _per_order(commands: list[dict]) -> dict[int, list[str]]:
    per_order: dict[int, list[str]] = defaultdict(list)
    for c in commands:
        per_order[c["order_id"]].append(c["command_id"])
    return per_order


async def assert_exactly_once(settings: Settings, commands: list[dict], events: list[dict]) -> None:
    """Each command applied once, in order, with a version per command; the topic covers each of them."""
    await assert_applied_once(settings, commands)
    assert_events_cover(commands, events)


async def assert_applied_once(settings: Settings, commands: list[dict]) -> None:
    """In Postgres: one processed record, one version and one history row per command, in command order."""
    per_order = _per_order(commands)
    ids = [c["command_id"] for c in commands]

    outcomes = await fetch(settings, "SELECT command_id, outcome FROM processed_commands WHERE command_id = ANY($1)", ids)
    assert len(outcomes) == len(ids), f"{len(ids) - len(outcomes)} commands never processed"
    not_applied = [r for r in outcomes if r["outcome"] != "applied"]
    assert not not_applied, f"{len(not_applied)} commands not applied (reordered or doubled?): {not_applied[:3]}"
    assert await fetchval(settings, "SELECT count(*) FROM processed_commands") == len(ids)

    for oid, expected_ids in per_order.items():
        row = (await fetch(settings, "SELECT version, status_id FROM orders WHERE order_id = $1", oid))[0]
        assert row["version"] == len(expected_ids), (oid, row["version"], len(expected_ids))
        assert row["status_id"] == (ON_HOLD if len(expected_ids) % 2 else CONFIRMED)
        history = await fetch(settings, "SELECT version, command_id FROM order_history WHERE order_id = $1 "
                                        "ORDER BY version", oid)
        assert [h["version"] for h in history] == list(range(1, len(expected_ids) + 1))
        assert [h["command_id"] for h in history] == expected_ids, f"order {oid}: history not in command order"
    assert await fetchval(settings, "SELECT count(DISTINCT command_id) = count(*) FROM order_history")


def assert_events_cover(commands: list[dict], events: list[dict]) -> None:
    """On the topic: an OrderStatusChanged per command; first appearances of an order's versions are 1, 2, 3 …

    At-least-once publishing allows an event to appear twice, but only as the same event_id: a
    version never has two different event ids."""
    per_order = _per_order(commands)
    ids = [c["command_id"] for c in commands]
    changed = [e for e in events if e["type"] == "OrderStatusChanged"]
    assert not [e for e in events if e["type"] != "OrderStatusChanged"], "unexpected rejections on the topic"
    assert {e["command_id"] for e in changed} == set(ids), "some command has no event on the topic"
    by_event: dict[str, dict] = {}
    for e in changed:
        assert by_event.setdefault(e["event_id"], e) == e, f"event {e['event_id']} republished with other content"
    for oid, expected_ids in per_order.items():
        first_seen: list[str] = []
        event_of_version: dict[int, str] = {}
        for e in changed:
            if e["order_id"] != oid:
                continue
            v = e["version"]
            assert event_of_version.setdefault(v, e["event_id"]) == e["event_id"], f"order {oid} v{v}: two event ids"
            if e["event_id"] not in first_seen:
                first_seen.append(e["event_id"])
        versions = [by_event[eid]["version"] for eid in first_seen]
        assert versions == list(range(1, len(expected_ids) + 1)), f"order {oid}: versions on the topic {versions}"
        assert [by_event[eid]["command_id"] for eid in first_seen] == expected_ids
